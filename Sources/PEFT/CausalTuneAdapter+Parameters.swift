import Core
import Layers
import Numerics

/// The Causal-Tune parameters under their reference §Files names and PyTorch layouts:
/// `peft/tokens [L, m, C]` (or `peft/tokens_a [L, m, r]`, `peft/tokens_b [L, r, C]`),
/// `peft/f_t/weight [C, C]`, `peft/f_t/bias [C]`, `peft/f_d/weight [C, C]`,
/// `peft/f_d/bias [C]`, `peft/scale [1]` — all with gradients. Reading them from a file is
/// left to the caller (`lookup`), so the layer knows no file format.
extension CausalTuneAdapter {
    /// The reference §Files prefix of every Causal-Tune parameter.
    public static let parameterPrefix = "peft/"

    /// The trainable parameters in reference §Files order; with `prefix: "peft/"` (or
    /// `trainableParameters`) the names are the checkpoint names.
    public func parameters(prefix: String) -> [NamedParameter] {
        var list: [NamedParameter] = []
        if let t = tokens { list.append(NamedParameter(name: prefix + "tokens", parameter: t)) }
        if let a = tokensA, let b = tokensB {
            list.append(NamedParameter(name: prefix + "tokens_a", parameter: a))
            list.append(NamedParameter(name: prefix + "tokens_b", parameter: b))
        }
        list += ft.parameters(prefix: prefix + "f_t/")
        list += fd.parameters(prefix: prefix + "f_d/")
        list.append(NamedParameter(name: prefix + "scale", parameter: scale))
        return list
    }

    /// `parameters(prefix: "peft/")`: reference §Files names (`peft/tokens`, `peft/f_t/weight`, …).
    public var trainableParameters: [NamedParameter] { parameters(prefix: CausalTuneAdapter.parameterPrefix) }

    /// Copies parameter values from `lookup(name)` (e.g. a checkpoint's `/params/<name>`).
    /// Throws a `CausalTuneError` naming `source` and the parameter when one is missing or
    /// has the wrong shape. Invalidates the layer caches, which hold the old tokens.
    public func loadParameters(from source: String, _ lookup: (String) throws -> Tensor?) throws {
        try copyTrainableParameters(from: source, lookup)
        for c in caches { c.valid = false }
    }
}
