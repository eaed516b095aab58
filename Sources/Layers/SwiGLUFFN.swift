import Numerics

/// The SwiGLU feed-forward block of DINOv2 ViT-g (`SwiGLUFFNFused`, checkpoint keys
/// `mlp.w12.*`, `mlp.w3.*`) and of EVA02 (gate first as well):
///
///     x12 = x W12ᵀ + b12                 x [N, C], W12 [2H, C], x12 [N, 2H]
///     x1, x2 = x12[:, :H], x12[:, H:]    (torch `chunk(2, dim=-1)`)
///     h = silu(x1) ⊙ x2                  h [N, H]
///     y = LN(h) W3ᵀ + b3                 W3 [C, H], y [N, C]
///
/// `LN` is EVA02-B/L's sub-LayerNorm (`mlp.ffn_ln`) when the block has one, else identity.
/// Separate gate and value projections (EVA02 `w1`/`w2`, timm `fc1_g`/`fc1_x`) are loaded
/// stacked into W12, gate rows first, so one product serves both.
///
/// Memory (as `MLP`): the caches are x12, and h when the sub-LayerNorm's backward needs it;
/// with `inputGradientsOnly` (a frozen backbone) h or LN(h), which only w3's weight gradient
/// reads, and every backward work buffer are borrowed from `arena`; with `cachesInArena`
/// the caches too.
///
/// with `H = (Int(mlpRatio·C · 2/3) + 7) / 8 · 8` (`hiddenSize(channels:)`: 4096 for C = 1536).
/// The gate's math and gradient are in `Kernels.swiGLUForward/Backward`. Caches of the last
/// forward: x12 [N, 2H] and h [N, H]; backward uses [N, H] and [N, 2H] scratch.
public final class SwiGLUFFN: InputProjectedLayer {
    public let channels: Int        // C
    public let hiddenChannels: Int  // H
    public let w12: Linear          // [2H, C]
    public let w3: Linear           // [C, H]
    public var inputProjection: Linear { w12 }
    /// EVA02-B/L's LayerNorm over the hidden width before w3 (`ffn_ln`); nil: none.
    public let subNorm: LayerNorm?
    private var x12 = CacheBuffer(), hidden = CacheBuffer(), dHidden = CacheBuffer(), dX12 = CacheBuffer()
    private var normed = CacheBuffer(), dNormed = CacheBuffer()
    /// The last forward's x12, h and LN(h) (own buffers or arena views).
    private var x12Cache = Tensor(zeros: [0]), hiddenCache = Tensor(zeros: [0]), normedCache = Tensor(zeros: [0])

    /// Lends the work buffers; nil: own buffers.
    public var arena: ScratchArena?
    /// Keep the caches in `arena` too.
    public var cachesInArena = false
    /// Only `backwardInput` will follow (frozen weights): what only w3's weight gradient
    /// reads goes to the arena.
    public var inputGradientsOnly = false

    /// DINOv2's hidden size for `mlpRatio · C` requested features: two thirds, rounded up to a
    /// multiple of 8.
    public static func hiddenSize(channels: Int, mlpRatio: Double = 4) -> Int {
        let requested = Int(Double(channels) * mlpRatio)
        return (Int(Double(requested) * 2 / 3) + 7) / 8 * 8
    }

    /// `subNormEps`: the sub-LayerNorm's eps, nil for none.
    public init(channels: Int, hiddenChannels: Int, subNormEps: Float? = nil) {
        self.channels = channels
        self.hiddenChannels = hiddenChannels
        w12 = Linear(inputDimensions: channels, outputDimensions: 2 * hiddenChannels)
        w3 = Linear(inputDimensions: hiddenChannels, outputDimensions: channels)
        subNorm = subNormEps.map { LayerNorm(channels: hiddenChannels, eps: $0) }
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        w12.parameters(prefix: prefix + "w12.") + (subNorm?.parameters(prefix: prefix + "ffn_ln.") ?? [])
            + w3.parameters(prefix: prefix + "w3.")
    }

    public func reset(rng: inout RandomGenerator) {
        w12.reset(rng: &rng)
        w3.reset(rng: &rng)
    }

    /// input [N, C] → output [N, C] (written).
    public func forward(_ input: Tensor, into output: Tensor) {
        let n = rows(of: input, channels: channels, writing: output)
        let H = hiddenChannels
        let x = x12.cache(arena, inArena: cachesInArena, "swiglu.x12", [n, 2 * H])
        // h is read back by the sub-LayerNorm's backward; without one only w3's weight gradient reads it.
        let h = hidden.cache(arena, inArena: cachesInArena || (inputGradientsOnly && subNorm == nil), "swiglu.hidden", [n, H])
        x12Cache = x
        hiddenCache = h
        w12.forward(input, into: x)
        Kernels.swiGLUForward(hidden: h.data, x12: x.data, rows: n, hiddenSize: H)
        if let subNorm {
            let hn = normed.cache(arena, inArena: cachesInArena || inputGradientsOnly, "swiglu.normed", [n, H])
            normedCache = hn
            subNorm.forward(h, into: hn)
            w3.forward(hn, into: output)
        } else {
            w3.forward(h, into: output)
        }
    }

    public func releaseCache() {
        x12.release(); hidden.release(); dHidden.release(); dX12.release(); normed.release(); dNormed.release()
        x12Cache = Tensor(zeros: [0]); hiddenCache = Tensor(zeros: [0]); normedCache = Tensor(zeros: [0])
        subNorm?.releaseCache()
    }

    /// ∂L/∂x12 [N, 2H] from ∂L/∂y, plus w3's (and the sub-LayerNorm's) gradients unless frozen.
    public func projectionOutputGradient(dOutput: Tensor, input: Tensor, frozen: Bool) -> Tensor {
        let n = rowCount(input, channels)
        precondition(dOutput.count == input.count, "SwiGLUFFN: dOutput \(dOutput.shape) for input \(input.shape)")
        precondition(x12Cache.shape == [n, 2 * hiddenChannels], "SwiGLUFFN: backward without a matching forward")
        let H = hiddenChannels
        let dh = dHidden.work(arena, "swiglu.dHidden", [n, H]), dx = dX12.work(arena, "swiglu.dX12", [n, 2 * H])
        if let subNorm {
            // dh = LNᵀ(W3ᵀ dy) at the cached statistics.
            let dhn = dNormed.work(arena, "swiglu.dNormed", [n, H])
            if !frozen { w3.backward(dOutput: dOutput, input: normedCache, dInput: nil) }
            w3.inputGradient(dOutput: dOutput, into: dhn, accumulate: false)
            dh.zero()
            if frozen {
                subNorm.backwardInput(dOutput: dhn, input: hiddenCache, dInput: dh)
            } else {
                subNorm.backward(dOutput: dhn, input: hiddenCache, dInput: dh)
            }
        } else {
            if !frozen { w3.backward(dOutput: dOutput, input: hiddenCache, dInput: nil) }
            w3.inputGradient(dOutput: dOutput, into: dh, accumulate: false)
        }
        dx.zero()
        Kernels.swiGLUBackward(dX12: dx.data, dHidden: dh.data, x12: x12Cache.data, rows: n, hiddenSize: H)
        return dx
    }
}
