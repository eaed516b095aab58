import Core
import Foundation

/// Which PEFT method runs after every block (`model.peft.method`).
public enum PEFTMethod: String, CaseIterable, Sendable {
    /// The paper's layer: transform → band-pass → tokens → inverse transform.
    case causalTune = "causal_tune"
    /// Rein: the same token refinement on the spatial features (identity transform, no filter).
    case rein
    /// No adapter: frozen backbone + head only.
    case none
}

/// The configuration of the Causal-Tune layer (`model.peft` in reference §Configuration).
///
/// Variants are configuration (reference §Causal-Tune layer table): `transform`, `filter.{mode, shape, low,
/// high}`, `discardNoncausal`, low-rank tokens (`loraRank`), and `method`. For
/// `method: rein` the transform is `identity` and the filter `none`, whatever the other
/// keys say (`effectiveTransform`, `effectiveFilter`).
public struct CausalTuneOptions: Equatable, Sendable {
    public var method: PEFTMethod
    /// `m`, the number of causal-aware tokens per layer (token 0 is the null sink).
    public var tokens: Int
    /// `r` of the low-rank form `T_i = A_i B_i`; `nil` for full tokens.
    public var loraRank: Int?
    /// The initial value of the shared scale `s`.
    public var scaleInit: Float
    public var transform: TransformKind
    public var discardNoncausal: Bool
    public var filter: FrequencyFilter

    public init(method: PEFTMethod = .causalTune, tokens: Int = 100, loraRank: Int? = nil, scaleInit: Float = 1e-3,
                transform: TransformKind = .dct, discardNoncausal: Bool = false,
                filter: FrequencyFilter = FrequencyFilter()) {
        self.method = method
        self.tokens = tokens
        self.loraRank = loraRank
        self.scaleInit = scaleInit
        self.transform = transform
        self.discardNoncausal = discardNoncausal
        self.filter = filter
    }

    /// Rein's configuration (identity transform, no filter).
    public static func rein(tokens: Int = 100, loraRank: Int? = nil, scaleInit: Float = 1e-3) -> CausalTuneOptions {
        CausalTuneOptions(method: .rein, tokens: tokens, loraRank: loraRank, scaleInit: scaleInit,
                          transform: .identity, filter: FrequencyFilter(mode: .none))
    }

    /// The transform that runs: `identity` for Rein.
    public var effectiveTransform: TransformKind { method == .rein ? .identity : transform }

    /// The filter that runs: `none` for Rein.
    public var effectiveFilter: FrequencyFilter {
        method == .rein ? FrequencyFilter(mode: .none, shape: filter.shape, low: filter.low, high: filter.high) : filter
    }

    /// Checks the values; throws a `CausalTuneError` naming the `model.peft` key at fault.
    public func validate() throws {
        if method == .none { return }
        if tokens < 1 { throw CausalTuneError("model.peft.tokens must be at least 1, got \(tokens)") }
        if let r = loraRank, r < 1 { throw CausalTuneError("model.peft.lora_rank must be at least 1 or null, got \(r)") }
        if !scaleInit.isFinite { throw CausalTuneError("model.peft.scale_init must be finite, got \(scaleInit)") }
        let f = effectiveFilter
        if f.mode != .none {
            if !(f.low.isFinite && f.low > 0) {
                throw CausalTuneError("model.peft.filter.low must be a positive number, got \(f.low)")
            }
            if !(f.high.isFinite && f.high > 0) {
                throw CausalTuneError("model.peft.filter.high must be a positive number, got \(f.high)")
            }
            if effectiveTransform == .identity {
                throw CausalTuneError("model.peft.filter.mode must be none with transform: identity (a frequency mask needs a spectrum), got \(f.mode.rawValue)")
            }
        }
    }
}
