import Numerics

/// The two-layer feed-forward block: timm's ViT `Mlp` with exact GELU (DINOv2 ViT-S/B/L) or
/// QuickGELU (CLIP, `x·σ(1.702x)`), and mmcv's `FFN` with ReLU (Mask2Former's pixel and
/// transformer decoders; without its residual, which the layers add):
///
///     h = x W1ᵀ + b1,   a = act(h),   y = a W2ᵀ + b2
///     x [N, C], W1 [H, C] (`fc1`), W2 [C, H] (`fc2`), H = 4C
///
/// The bias add and GELU are fused after the first GEMM; ReLU follows `fc1` as mmcv's does
/// (bias first, then the product), which keeps the head's numbers those of its fixtures. Backward:
///
///     da = dy W2  (fc2),   dh = act'(h) ⊙ da,   dx += dh W1  (fc1)
///
/// Caches of the last forward: h and a ([N, H] each; a not with `inputGradientsOnly`, as
/// only fc2's weight gradient reads it; with ReLU one buffer, h made max(h, 0) in place);
/// backward uses one [N, H] scratch. With an `arena`
/// the scratch (and a with `inputGradientsOnly`) is borrowed from it, with `cachesInArena`
/// h too (see `Attention`).
public final class MLP: InputProjectedLayer {
    /// The nonlinearity between the two products.
    public enum Activation: String, Equatable, Sendable {
        /// Exact (erf) GELU, `torch.nn.GELU()`.
        case gelu
        /// CLIP's `x · σ(1.702 x)`.
        case quickGELU
        /// `max(x, 0)` (mmcv `FFN`).
        case relu

        /// The fused bias + activation kernel's form; nil for ReLU, which follows `fc1`'s
        /// own bias add as mmcv's does.
        var fused: FusedActivation? {
            switch self {
            case .gelu: .gelu
            case .quickGELU: .quickGELU
            case .relu: nil
            }
        }
    }

    /// How the two products are named in checkpoints.
    public enum Naming: Sendable {
        /// timm `fc1.*`, `fc2.*`.
        case timm
        /// mmcv `FFN`'s Sequential: `layers.0.0.*`, `layers.1.*`.
        case mmcvFFN
    }

    public let channels: Int        // C
    public let activation: Activation
    public let hiddenChannels: Int  // H
    public let fc1: Linear          // [H, C]
    public let fc2: Linear          // [C, H]
    public var inputProjection: Linear { fc1 }
    public let naming: Naming
    private var pre = CacheBuffer(), act = CacheBuffer(), dAct = CacheBuffer()
    private var preCache = Tensor(zeros: [0]), actCache = Tensor(zeros: [0])

    /// Lends the work buffers; nil: own buffers.
    public var arena: ScratchArena?
    /// Keep the cache h in `arena` too.
    public var cachesInArena = false
    /// Only `backwardInput` will follow (frozen weights): a goes to the arena, not the cache.
    public var inputGradientsOnly = false

    public init(channels: Int, hiddenChannels: Int, activation: Activation = .gelu, naming: Naming = .timm) {
        self.channels = channels
        self.naming = naming
        self.activation = activation
        self.hiddenChannels = hiddenChannels
        fc1 = Linear(inputDimensions: channels, outputDimensions: hiddenChannels)
        fc2 = Linear(inputDimensions: hiddenChannels, outputDimensions: channels)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        switch naming {
        case .timm: fc1.parameters(prefix: prefix + "fc1.") + fc2.parameters(prefix: prefix + "fc2.")
        case .mmcvFFN: fc1.parameters(prefix: prefix + "layers.0.0.") + fc2.parameters(prefix: prefix + "layers.1.")
        }
    }

    public func reset(rng: inout RandomGenerator) {
        fc1.reset(rng: &rng)
        fc2.reset(rng: &rng)
    }

    /// input [N, C] → output [N, C] (written).
    public func forward(_ input: Tensor, into output: Tensor) {
        let n = rows(of: input, channels: channels, writing: output)
        let h = pre.cache(arena, inArena: cachesInArena, "mlp.pre", [n, hiddenChannels])
        preCache = h
        if let fused = activation.fused {
            let a = activationCache(rows: n)
            fc1Product(input, into: h, rows: n)
            Kernels.biasActivationForward(fused, preActivation: h.data, bias: fc1.bias?.value.data, out: a.data,
                                          rows: n, cols: hiddenChannels)
        } else {
            // ReLU in place, as mmcv's FFN: the backward's mask h > 0 reads the same after
            // max(h, 0) as before it, so one buffer serves as h and a.
            fc1.forward(input, into: h)
            MLP.reluInPlace(h)
            actCache = h
        }
        fc2.forward(actCache, into: output)
    }

    /// The cache of a (GELU's output), which only fc2's weight gradient reads back.
    private func activationCache(rows n: Int) -> Tensor {
        let a = act.cache(arena, inArena: cachesInArena || inputGradientsOnly, "mlp.act", [n, hiddenChannels])
        actCache = a
        return a
    }

    /// h = x W1ᵀ without the bias (the GELU kernels add it).
    @inline(__always)
    private func fc1Product(_ input: Tensor, into h: Tensor, rows n: Int) {
        BLAS.gemm(transposeA: false, transposeB: true, m: n, n: hiddenChannels, k: channels,
                  a: input.data, lda: channels, b: fc1.weight.value.data, ldb: channels,
                  c: h.data, ldc: hiddenChannels)
    }

    /// Frees the activation caches and scratch.
    public func releaseCache() {
        pre.release(); act.release(); dAct.release()
        preCache = Tensor(zeros: [0]); actCache = Tensor(zeros: [0])
    }

    /// dh = act'(h) ⊙ (dy W2), plus fc2's parameter gradients unless frozen.
    public func projectionOutputGradient(dOutput: Tensor, input: Tensor, frozen: Bool) -> Tensor {
        let n = rowCount(input, channels)
        precondition(dOutput.count == input.count, "MLP: dOutput \(dOutput.shape) for input \(input.shape)")
        precondition(preCache.shape == [n, hiddenChannels], "MLP: backward without a matching forward")
        let da = dAct.work(arena, "mlp.dAct", [n, hiddenChannels])
        if !frozen { fc2.backward(dOutput: dOutput, input: actCache, dInput: nil) }
        fc2.inputGradient(dOutput: dOutput, into: da, accumulate: false)
        if let fused = activation.fused {
            Kernels.activationBackwardInPlace(fused, da.data, preActivation: preCache.data, count: da.count)
        } else {
            MLP.reluBackwardInPlace(da, preActivation: preCache)
        }
        return da
    }

    private static func reluInPlace(_ h: Tensor) {
        let hp = h.data
        Parallel.forEach(h.count, grain: Kernels.elementGrain) { r in for i in r where hp[i] < 0 { hp[i] = 0 } }
    }

    private static func reluBackwardInPlace(_ d: Tensor, preActivation h: Tensor) {
        let hp = h.data, dp = d.data
        Parallel.forEach(d.count, grain: Kernels.elementGrain) { r in for i in r where hp[i] <= 0 { dp[i] = 0 } }
    }
}
