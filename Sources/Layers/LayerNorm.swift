import Numerics

/// LayerNorm over the channel dimension (`torch.nn.LayerNorm(C, eps)`):
///
///     y = (x − μ) / √(σ² + eps) ⊙ γ + β          x, y [N, C]; γ (weight), β (bias) [C]
///
/// The math of forward and backward is in `Kernels.layerNormForward/Backward`; the layer
/// caches `mean` and `rstd` ([N] each) of its last forward. Initialisation: γ = 1, β = 0.
public final class LayerNorm: Layer {
    public let channels: Int       // C
    public let eps: Float
    public let weight: Parameter   // γ [C]
    public let bias: Parameter     // β [C]
    private var mean = CacheBuffer(), rstd = CacheBuffer()

    public init(channels: Int, eps: Float = 1e-6) {
        self.channels = channels
        self.eps = eps
        weight = Parameter(Tensor(shape: [channels], repeating: 1))
        bias = Parameter(zeros: [channels])
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        [NamedParameter(name: prefix + "weight", parameter: weight),
         NamedParameter(name: prefix + "bias", parameter: bias)]
    }

    /// input [N, C] → output [N, C] (written; may not alias input). Caches mean, rstd.
    public func forward(_ input: Tensor, into output: Tensor) {
        let n = rows(of: input, channels: channels, writing: output)
        let m = mean.ensure([n]), r = rstd.ensure([n])
        Kernels.layerNormForward(out: output.data, mean: m.data, rstd: r.data, input: input.data,
                                 weight: weight.value.data, bias: bias.value.data,
                                 rows: n, channels: channels, eps: eps)
    }

    /// Full backward (after `forward` on the same `input`): accumulates dx when `dInput` is
    /// given, and dγ, dβ for the parameters that require a gradient.
    public func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?) {
        let n = checkCache(input, dOutput)
        Kernels.layerNormBackward(dInput: dInput?.data, dWeight: weight.grad?.data, dBias: bias.grad?.data,
                                  dOutput: dOutput.data, input: input.data, weight: weight.value.data,
                                  mean: mean.tensor.data, rstd: rstd.tensor.data, rows: n, channels: channels)
    }

    /// Frozen backward: accumulates only dx.
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor) {
        let n = checkCache(input, dOutput)
        precondition(dInput.count == input.count, "LayerNorm: dInput \(dInput.shape) for input \(input.shape)")
        Kernels.layerNormBackward(dInput: dInput.data, dWeight: nil, dBias: nil,
                                  dOutput: dOutput.data, input: input.data, weight: weight.value.data,
                                  mean: mean.tensor.data, rstd: rstd.tensor.data, rows: n, channels: channels)
    }

    /// Frees the cached statistics.
    public func releaseCache() { mean.release(); rstd.release() }

    private func checkCache(_ input: Tensor, _ dOutput: Tensor) -> Int {
        let n = rowCount(input, channels)
        precondition(dOutput.count == input.count, "LayerNorm: dOutput \(dOutput.shape) for input \(input.shape)")
        precondition(mean.tensor.count == n, "LayerNorm: backward without a matching forward")
        return n
    }
}
