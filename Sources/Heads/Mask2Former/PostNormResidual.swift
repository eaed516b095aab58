import Numerics
import Layers

/// mmdet's post-norm residual around each sub-layer f (attention or FFN) of the encoder and
/// decoder layers, `out = LN(x + f(x))`. The sub-layer writes f(x) into `sum`, which then
/// becomes x + f(x): the norm's input, which its backward reads.
enum PostNormResidual {
    /// `sum` holds f(x) on entry and x + f(x) on return; out = LN(sum). x, sum, out [..., C].
    static func forward(_ x: Tensor, sum: Tensor, norm: LayerNorm, into output: Tensor) {
        Kernels.axpy(1, x, sum)
        let rows = [sum.count / norm.channels, norm.channels]
        norm.forward(sum.reshaped(rows), into: output.reshaped(rows))
    }

    /// ∂sum = LNᵀ(∂out) at the cached statistics (written into `dSum`; the norm's parameter
    /// gradients accumulate). ∂sum is the gradient of both x and f(x).
    static func backward(dOutput: Tensor, sum: Tensor, norm: LayerNorm, into dSum: Tensor) {
        let rows = [sum.count / norm.channels, norm.channels]
        dSum.zero()
        norm.backward(dOutput: dOutput.reshaped(rows), input: sum.reshaped(rows), dInput: dSum.reshaped(rows))
    }

    /// The sub-layer whole when f is one `Layer` (the FFN): out = LN(x + f(x)), `sum` kept.
    static func forward<F: Layer>(_ x: Tensor, through f: F, sum: Tensor, norm: LayerNorm, into output: Tensor) {
        f.forward(x, into: sum)
        forward(x, sum: sum, norm: norm, into: output)
    }

    /// Its backward: ∂x = ∂sum + fᵀ(∂sum) (written into `dInput`; f's parameter gradients
    /// accumulate). ∂sum lives in `work`'s buffer `workKey` for the call only.
    static func backward<F: Layer>(dOutput: Tensor, input x: Tensor, through f: F, sum: Tensor, norm: LayerNorm,
                                   work: ScratchArena, workKey: String, dInput: Tensor) {
        let dSum = work.tensor(workKey, sum.shape)
        backward(dOutput: dOutput, sum: sum, norm: norm, into: dSum)
        dInput.copy(from: dSum)
        f.backward(dOutput: dSum, input: x, dInput: dInput)
    }
}
