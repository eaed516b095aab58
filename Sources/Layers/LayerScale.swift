import Numerics

/// Per-channel scaling of a residual branch (DINOv2 `LayerScale`, key `gamma`):
///
///     y = x ⊙ γ                 x, y [N, C], γ [C]
///     dx += dy ⊙ γ,   dγ += Σ_N dy ⊙ x
///
/// `forward(_:into:accumulate: true)` adds the scaled branch onto `output` instead
/// (`x_res += ls(branch)`), which is how a block applies it without a temporary.
/// Initialisation: γ = `initValue` (DINOv2 uses 1e-5 at training start; checkpoints overwrite it).
public final class LayerScale: Layer {
    public let channels: Int
    public let gamma: Parameter   // [C]

    public init(channels: Int, initValue: Float = 1e-5) {
        self.channels = channels
        gamma = Parameter(Tensor(shape: [channels], repeating: initValue))
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        [NamedParameter(name: prefix + "gamma", parameter: gamma)]
    }

    /// output = x ⊙ γ. input, output [N, C].
    public func forward(_ input: Tensor, into output: Tensor) {
        forward(input, into: output, accumulate: false)
    }

    /// output = x ⊙ γ, or output += x ⊙ γ with `accumulate`. input, output [N, C].
    public func forward(_ input: Tensor, into output: Tensor, accumulate: Bool) {
        let n = rows(of: input, channels: channels, writing: output)
        let x = input.data, y = output.data, g = gamma.value.data, C = channels
        Parallel.forEach(n, grain: Swift.max(1, Kernels.elementGrain / Swift.max(C, 1))) { r in
            for i in r {
                let xi = x + i * C, yi = y + i * C
                if accumulate {
                    for c in 0..<C { yi[c] += xi[c] * g[c] }
                } else {
                    for c in 0..<C { yi[c] = xi[c] * g[c] }
                }
            }
        }
    }

    /// Full backward: accumulates dx (when given) and dγ (when γ requires a gradient).
    public func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?) {
        let n = rowCount(input, channels)
        precondition(dOutput.count == input.count, "LayerScale: dOutput \(dOutput.shape) for input \(input.shape)")
        if let dg = gamma.grad {
            // dγ[c] += Σ_i dy[i, c] x[i, c], in column blocks (Double accumulation).
            let C = channels, x = input.data, dy = dOutput.data, d = dg.data
            let block = 64
            Parallel.forEach((C + block - 1) / block) { br in
                var acc = [Double](repeating: 0, count: block)
                for b in br {
                    let c0 = b * block, w = Swift.min(block, C - c0)
                    for j in 0..<w { acc[j] = 0 }
                    for i in 0..<n {
                        let xi = x + i * C + c0, gi = dy + i * C + c0
                        for j in 0..<w { acc[j] += Double(gi[j] * xi[j]) }
                    }
                    for j in 0..<w { d[c0 + j] += Float(acc[j]) }
                }
            }
        }
        if let dx = dInput { backwardInput(dOutput: dOutput, dInput: dx) }
    }

    /// Frozen backward: dx += dy ⊙ γ (the `Layer` form; dx does not depend on the input).
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor) {
        backwardInput(dOutput: dOutput, dInput: dInput)
    }

    /// Frozen backward: dx += dy ⊙ γ, which is the accumulating forward applied to dy.
    public func backwardInput(dOutput: Tensor, dInput: Tensor) {
        forward(dOutput, into: dInput, accumulate: true)
    }
}
