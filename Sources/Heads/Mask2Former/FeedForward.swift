import Numerics
import Layers

/// mmcv's `FFN` without the residual (the layers add it): `Linear(C, F) → ReLU → Linear(F, C)`
/// on rows `[N, C]`. Backward: `dh = (dy W₂) ⊙ [h > 0]`, then the Linear backwards.
/// Parameter names `layers.0.0.*` and `layers.1.*` (mmcv's Sequential layout).
public final class FeedForward: Module {
    public let fc1: Linear, fc2: Linear
    private var hidden = Tensor(zeros: [0])

    public init(channels: Int, hidden: Int) {
        fc1 = Linear(inputDimensions: channels, outputDimensions: hidden)
        fc2 = Linear(inputDimensions: hidden, outputDimensions: channels)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        fc1.parameters(prefix: prefix + "layers.0.0.") + fc2.parameters(prefix: prefix + "layers.1.")
    }

    public func reset(rng: inout RandomGenerator) {
        fc1.reset(rng: &rng)
        fc2.reset(rng: &rng)
    }

    /// input [N, C] → output [N, C] (written).
    public func forward(_ input: Tensor, into output: Tensor) {
        let n = input.count / fc1.inputDimensions
        if hidden.count != n * fc1.outputDimensions { hidden = Tensor(zeros: [n, fc1.outputDimensions]) }
        fc1.forward(input.reshaped([n, fc1.inputDimensions]), into: hidden)
        let h = hidden.data
        Parallel.forEach(hidden.count, grain: Kernels.elementGrain) { r in for i in r where h[i] < 0 { h[i] = 0 } }
        fc2.forward(hidden, into: output.reshaped([n, fc2.outputDimensions]))
    }

    /// Accumulates parameter gradients and dInput (when given).
    public func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?) {
        let n = input.count / fc1.inputDimensions
        let dh = Tensor(zeros: hidden.shape)
        fc2.backward(dOutput: dOutput.reshaped([n, fc2.outputDimensions]), input: hidden, dInput: dh)
        let h = hidden.data, d = dh.data
        Parallel.forEach(dh.count, grain: Kernels.elementGrain) { r in for i in r where h[i] <= 0 { d[i] = 0 } }
        fc1.backward(dOutput: dh, input: input.reshaped([n, fc1.inputDimensions]), dInput: dInput?.reshaped([n, fc1.inputDimensions]))
    }
}
