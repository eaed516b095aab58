import Foundation
import Numerics

/// The band-pass mask `M` on the coefficient grid (reference §Causal-Tune layer), and the three-band weights
/// behind `band_energy`.
///
/// With the normalised frequency `ρ = √(ρ_u² + ρ_v²)` of the transform (1 = Nyquist; see
/// `SpectralTransform.frequency`) and the cut-offs `σ_L = filter.low`, `σ_H = filter.high`,
/// the two factors are
///
///     gaussian:  keepAboveLow(ρ) = 1 − exp(−ρ² / (2 σ_L²))    keepBelowHigh(ρ) = exp(−ρ² / (2 σ_H²))
///     ideal:     keepAboveLow(ρ) = [ρ ≥ σ_L]                  keepBelowHigh(ρ) = [ρ ≤ σ_H]
///
/// and the mode picks which of them the mask uses (an unused factor is 1):
///
///     bandpass  M = keepAboveLow · keepBelowHigh    (remove low and high)
///     lowcut    M = keepAboveLow                    (remove low only)
///     highcut   M = keepBelowHigh                   (remove high only)
///     none      M = 1
///
/// For `ideal` + `bandpass` this is `M = 1` where `σ_L ≤ ρ ≤ σ_H`, else 0.
///
/// **Band weights** (for `band_energy`): with `a` = the mode's `keepAboveLow` (1 if the mode
/// keeps the low band) and `b` = its `keepBelowHigh`,
///
///     low = 1 − a,   causal = a · b = M,   high = a · (1 − b)
///
/// which sum to 1 at every coefficient — a partition of the spectrum into what the filter
/// removes as "low", keeps as "causal", and removes as "high".
public enum FilterMode: String, CaseIterable, Sendable, Decodable {
    case bandpass, lowcut, highcut, none
}

/// The shape of the mask's factors.
public enum FilterShape: String, CaseIterable, Sendable, Decodable {
    case gaussian, ideal
}

/// A band-pass filter specification: mode, shape and the cut-offs `σ_L` (`low`), `σ_H` (`high`).
public struct FrequencyFilter: Equatable, Sendable, Decodable {
    public var mode: FilterMode
    public var shape: FilterShape
    public var low: Double
    public var high: Double

    public init(mode: FilterMode = .bandpass, shape: FilterShape = .gaussian, low: Double = 0.2, high: Double = 0.7) {
        self.mode = mode
        self.shape = shape
        self.low = low
        self.high = high
    }

    /// The factor that removes low frequencies (1 if the mode keeps them).
    public func keepAboveLow(_ rho: Double) -> Double {
        guard mode == .bandpass || mode == .lowcut else { return 1 }
        switch shape {
        case .gaussian: return 1 - exp(-rho * rho / (2 * low * low))
        case .ideal: return rho >= low ? 1 : 0
        }
    }

    /// The factor that removes high frequencies (1 if the mode keeps them).
    public func keepBelowHigh(_ rho: Double) -> Double {
        guard mode == .bandpass || mode == .highcut else { return 1 }
        switch shape {
        case .gaussian: return exp(-rho * rho / (2 * high * high))
        case .ideal: return rho <= high ? 1 : 0
        }
    }

    /// `M(ρ)`.
    public func mask(_ rho: Double) -> Double { keepAboveLow(rho) * keepBelowHigh(rho) }

    /// `(low, causal, high)` band weights at `ρ`; they sum to 1.
    public func bandWeights(_ rho: Double) -> (low: Double, causal: Double, high: Double) {
        let a = keepAboveLow(rho), b = keepBelowHigh(rho)
        return (1 - a, a * b, a * (1 - b))
    }

    /// The mask on the `h×w` coefficient grid of `transform`, `[h, w]`.
    public func mask(for transform: SpectralTransform) -> Tensor {
        let rho = transform.radialFrequency()
        return Tensor(shape: [transform.h, transform.w], values: rho.map { Float(mask($0)) })
    }

    /// Whether `M ≡ 1` (nothing to multiply).
    public var isIdentity: Bool { mode == .none }
}
