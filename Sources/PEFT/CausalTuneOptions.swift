import Config
import Core
import Foundation

/// Which PEFT method runs after every block (`model.peft.method`).
public enum PEFTMethod: String, CaseIterable, Sendable, Decodable {
    /// The Causal-Tune layer: transform → band-pass → tokens → inverse transform.
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
public struct CausalTuneOptions: Equatable, Sendable, Decodable {
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

    /// The fewest tokens a config may ask for: token 0 is the null sink, so one token
    /// refines nothing. The layer itself is defined for one token (output = input) and
    /// `validate` accepts it; tests use it.
    public static let minConfiguredTokens = 2
    /// The most tokens per layer: the full-size configs use 100; 4096 is already 4096 × C values per layer.
    public static let maxTokens = 4096
    /// The largest `lora_rank`; it must also not exceed the embed dim C, which the network
    /// checks when it knows the architecture.
    public static let maxLoRARank = 4096

    /// `model.peft`: every key with its default and range.
    public static let schema: ConfigSchema = .checked(.map([
        "method": .choice(PEFTMethod.causalTune),
        "tokens": .int(100, min: minConfiguredTokens, max: maxTokens),
        "lora_rank": .int(nil, min: 1, max: maxLoRARank),   // also ≤ the embed dim C
        "scale_init": .float(0.001, min: -1000, max: 1000),
        "transform": .choice(TransformKind.dct),
        "discard_noncausal": .bool(false),
        "filter": .map([
            "mode": .choice(FilterMode.bandpass),
            "shape": .choice(FilterShape.gaussian),
            "low": .float(0.2, min: 0, max: 1),
            "high": .float(0.7, min: 0, max: 1),
        ]),
    ]), check: { value, path, origin in
        if case .float(let low)? = value.value(at: "filter.low"), case .float(let high)? = value.value(at: "filter.high"),
           low >= high {
            throw CausalTuneError("config keys '\(path).filter.low' (\(low)) and '\(path).filter.high' (\(high)): low must be below high in \(origin)")
        }
    })

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
