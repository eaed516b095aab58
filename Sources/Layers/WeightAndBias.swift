import Numerics

/// The weight and optional bias of PyTorch's Linear and Conv2d: their checkpoint names and
/// their default initialisation, the same for both layers.
enum WeightAndBias {
    /// `weight`, then `bias` when there is one, under `prefix`.
    static func parameters(prefix: String, weight: Parameter, bias: Parameter?) -> [NamedParameter] {
        var p = [NamedParameter(name: prefix + "weight", parameter: weight)]
        if let b = bias { p.append(NamedParameter(name: prefix + "bias", parameter: b)) }
        return p
    }

    /// PyTorch's default: W, b ~ U(−1/√fanIn, 1/√fanIn), W drawn first.
    static func reset(weight: Parameter, bias: Parameter?, fanIn: Int, rng: inout RandomGenerator) {
        let bound = 1 / Float(fanIn).squareRoot()
        rng.fillUniform(weight.value, -bound, bound)
        if let b = bias { rng.fillUniform(b.value, -bound, bound) }
    }
}
