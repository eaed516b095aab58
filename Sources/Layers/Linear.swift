import Numerics

/// A fully connected layer, PyTorch layout (`torch.nn.Linear`):
///
///     y = x Wᵀ + b          x [N, C], W [OC, C], b [OC], y [N, OC]
///
/// (`N` is every leading dimension flattened: `B·T` tokens.) Backward:
///
///     dx += dy W            dW += dyᵀ x            db += Σ_N dy
///
/// Initialisation (`reset`): PyTorch's default, W and b ~ U(−1/√C, 1/√C).
public final class Linear: Layer {
    public let inputDimensions: Int    // C
    public let outputDimensions: Int   // OC
    public let weight: Parameter       // [OC, C]
    public let bias: Parameter?        // [OC]

    public init(inputDimensions: Int, outputDimensions: Int, bias: Bool = true) {
        self.inputDimensions = inputDimensions
        self.outputDimensions = outputDimensions
        weight = Parameter(zeros: [outputDimensions, inputDimensions])
        self.bias = bias ? Parameter(zeros: [outputDimensions]) : nil
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        WeightAndBias.parameters(prefix: prefix, weight: weight, bias: bias)
    }

    /// PyTorch's default initialisation: W, b ~ U(−1/√C, 1/√C).
    public func reset(rng: inout RandomGenerator) {
        WeightAndBias.reset(weight: weight, bias: bias, fanIn: inputDimensions, rng: &rng)
    }

    /// y = x Wᵀ + b. input [N, C], output [N, OC] (written).
    public func forward(_ input: Tensor, into output: Tensor) {
        let n = rowCount(input, inputDimensions)
        precondition(output.count == n * outputDimensions, "Linear: output \(output.shape) for input \(input.shape)")
        let oc = outputDimensions
        if let b = bias {
            // Start from the bias rows, then add x Wᵀ in one GEMM (beta = 1).
            let bp = b.value.data, out = output.data
            Parallel.forEach(n, grain: Swift.max(1, Kernels.elementGrain / Swift.max(oc, 1))) { r in
                for i in r { (out + i * oc).update(from: bp, count: oc) }
            }
        }
        BLAS.gemm(transposeA: false, transposeB: true, m: n, n: oc, k: inputDimensions,
                  a: input.data, lda: inputDimensions, b: weight.value.data, ldb: inputDimensions,
                  beta: bias == nil ? 0 : 1, c: output.data, ldc: oc)
    }

    /// input [..., C] → [..., OC].
    public func outputShape(for inputShape: [Int]) -> [Int] {
        var shape = inputShape
        shape[shape.count - 1] = outputDimensions
        return shape
    }

    /// Full backward: accumulates dx (when `dInput` is given) and dW, db for the parameters
    /// that require a gradient. dOutput [N, OC], input [N, C] (the forward's input).
    public func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?) {
        let n = rowCount(input, inputDimensions)
        precondition(dOutput.count == n * outputDimensions, "Linear: dOutput \(dOutput.shape) for input \(input.shape)")
        if let dW = weight.grad {
            // dW [OC, C] += dyᵀ [OC, N] · x [N, C]
            BLAS.gemm(transposeA: true, transposeB: false, m: outputDimensions, n: inputDimensions, k: n,
                      a: dOutput.data, lda: outputDimensions, b: input.data, ldb: inputDimensions,
                      beta: 1, c: dW.data, ldc: inputDimensions)
        }
        if let db = bias?.grad {
            Kernels.accumulateColumnSums(dOutput.data, rows: n, cols: outputDimensions, into: db.data)
        }
        if let dx = dInput { backwardInput(dOutput: dOutput, dInput: dx) }
    }

    /// Frozen backward: accumulates only dx += dy W (no weight-gradient work).
    /// dOutput [N, OC], dInput [N, C].
    public func backwardInput(dOutput: Tensor, dInput: Tensor) {
        inputGradient(dOutput: dOutput, into: dInput, accumulate: true)
    }

    /// The `Layer` form of the frozen backward (dx does not depend on the input).
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor) {
        backwardInput(dOutput: dOutput, dInput: dInput)
    }

    /// dx = dy W (accumulate: false) or dx += dy W (accumulate: true); for layers that own a
    /// scratch gradient buffer and want to skip zeroing it.
    func inputGradient(dOutput: Tensor, into dInput: Tensor, accumulate: Bool) {
        let n = rowCount(dInput, inputDimensions)
        precondition(dOutput.count == n * outputDimensions, "Linear: dOutput \(dOutput.shape) for dInput \(dInput.shape)")
        BLAS.gemm(transposeA: false, transposeB: false, m: n, n: inputDimensions, k: outputDimensions,
                  a: dOutput.data, lda: outputDimensions, b: weight.value.data, ldb: inputDimensions,
                  beta: accumulate ? 1 : 0, c: dInput.data, ldc: inputDimensions)
    }
}
