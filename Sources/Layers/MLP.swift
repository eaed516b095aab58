import Numerics

/// The ViT feed-forward block (timm `Mlp`): exact GELU (DINOv2 ViT-S/B/L) or QuickGELU
/// (CLIP, `x·σ(1.702x)`):
///
///     h = x W1ᵀ + b1,   a = act(h),   y = a W2ᵀ + b2
///     x [N, C], W1 [H, C] (`fc1`), W2 [C, H] (`fc2`), H = 4C
///
/// The bias add and GELU are fused after the first GEMM. Backward:
///
///     da = dy W2  (fc2),   dh = act'(h) ⊙ da,   dx += dh W1  (fc1)
///
/// Caches of the last forward: h and a ([N, H] each; a not with `inputGradientsOnly`, as
/// only fc2's weight gradient reads it); backward uses one [N, H] scratch. With an `arena`
/// the scratch (and a with `inputGradientsOnly`) is borrowed from it, with `cachesInArena`
/// h too (see `Attention`).
public final class MLP: Module {
    /// The nonlinearity between the two products.
    public enum Activation: String, Equatable, Sendable {
        /// Exact (erf) GELU, `torch.nn.GELU()`.
        case gelu
        /// CLIP's `x · σ(1.702 x)`.
        case quickGELU
    }

    public let channels: Int        // C
    public let activation: Activation
    public let hiddenChannels: Int  // H
    public let fc1: Linear          // [H, C]
    public let fc2: Linear          // [C, H]
    private var pre = CacheBuffer(), act = CacheBuffer(), dAct = CacheBuffer()
    private var preCache = Tensor(zeros: [0]), actCache = Tensor(zeros: [0])

    /// Lends the work buffers; nil: own buffers.
    public var arena: ScratchArena?
    /// Keep the cache h in `arena` too.
    public var cachesInArena = false
    /// Only `backwardInput` will follow (frozen weights): a goes to the arena, not the cache.
    public var inputGradientsOnly = false

    public init(channels: Int, hiddenChannels: Int, activation: Activation = .gelu) {
        self.channels = channels
        self.activation = activation
        self.hiddenChannels = hiddenChannels
        fc1 = Linear(inputDimensions: channels, outputDimensions: hiddenChannels)
        fc2 = Linear(inputDimensions: hiddenChannels, outputDimensions: channels)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        fc1.parameters(prefix: prefix + "fc1.") + fc2.parameters(prefix: prefix + "fc2.")
    }

    public func reset(rng: inout RandomGenerator) {
        fc1.reset(rng: &rng)
        fc2.reset(rng: &rng)
    }

    /// input [N, C] → output [N, C] (written).
    public func forward(_ input: Tensor, into output: Tensor) {
        let n = rowCount(input, channels)
        precondition(output.count == input.count, "MLP: output \(output.shape) for input \(input.shape)")
        let h = pre.cache(arena, inArena: cachesInArena, "mlp.pre", [n, hiddenChannels])
        // a is read back only by fc2's weight gradient.
        let a = act.cache(arena, inArena: cachesInArena || inputGradientsOnly, "mlp.act", [n, hiddenChannels])
        preCache = h
        actCache = a
        BLAS.gemm(transposeA: false, transposeB: true, m: n, n: hiddenChannels, k: channels,
                  a: input.data, lda: channels, b: fc1.weight.value.data, ldb: channels,
                  c: h.data, ldc: hiddenChannels)
        switch activation {
        case .gelu:
            Kernels.biasGELUForward(preActivation: h.data, bias: fc1.bias?.value.data, out: a.data,
                                    rows: n, cols: hiddenChannels)
        case .quickGELU:
            Kernels.biasQuickGELUForward(preActivation: h.data, bias: fc1.bias?.value.data, out: a.data,
                                         rows: n, cols: hiddenChannels)
        }
        fc2.forward(a, into: output)
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        let out = Tensor(zeros: input.shape)
        forward(input, into: out)
        return out
    }

    /// Full backward: accumulates dx (when given) and the gradients of the parameters that
    /// require one.
    public func backward(dOutput: Tensor, input: Tensor, dInput: Tensor?) {
        precondition(!inputGradientsOnly, "MLP: full backward of a layer set to inputGradientsOnly")
        let dh = hiddenGradient(dOutput: dOutput, input: input, frozen: false)
        fc1.backward(dOutput: dh, input: input, dInput: dInput)
    }

    /// Frozen backward: accumulates only dx (or, with `accumulate: false`, writes it).
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor, accumulate: Bool = true) {
        let dh = hiddenGradient(dOutput: dOutput, input: input, frozen: true)
        fc1.inputGradient(dOutput: dh, into: dInput, accumulate: accumulate)
    }

    /// Frees the activation caches and scratch.
    public func releaseCache() {
        pre.release(); act.release(); dAct.release()
        preCache = Tensor(zeros: [0]); actCache = Tensor(zeros: [0])
    }

    /// dh = act'(h) ⊙ (dy W2), plus fc2's parameter gradients unless frozen.
    private func hiddenGradient(dOutput: Tensor, input: Tensor, frozen: Bool) -> Tensor {
        let n = rowCount(input, channels)
        precondition(dOutput.count == input.count, "MLP: dOutput \(dOutput.shape) for input \(input.shape)")
        precondition(preCache.shape == [n, hiddenChannels], "MLP: backward without a matching forward")
        let da = dAct.work(arena, "mlp.dAct", [n, hiddenChannels])
        if !frozen { fc2.backward(dOutput: dOutput, input: actCache, dInput: nil) }
        fc2.inputGradient(dOutput: dOutput, into: da, accumulate: false)
        switch activation {
        case .gelu: Kernels.geluBackwardInPlace(da.data, preActivation: preCache.data, count: da.count)
        case .quickGELU: Kernels.quickGELUBackwardInPlace(da.data, preActivation: preCache.data, count: da.count)
        }
        return da
    }
}
