import Layers
import Numerics

/// One pre-norm transformer block: DINOv2's (official `NestedTensorBlock`, timm `Block`)
/// with LayerScale, EVA02's and CLIP's without (γ = 1):
///
///     n1  = LN1(x)                      x, n1 [B, T, C]   (LayerNorm eps 1e-6; CLIP 1e-5)
///     x1  = x  + γ1 ⊙ Attn(n1)          fused qkv [3C, C], softmax scale D^−½ (EVA02: RoPE on q, k)
///     n2  = LN2(x1)
///     out = x1 + γ2 ⊙ FFN(n2)           FFN: fc2(act(fc1 ·)) or w3(LN(silu(x₁) ⊙ x₂))
///
/// The weights are frozen, so the backward computes input gradients only:
///
///     dx1 = dout + LN2ᵀ( FFNᵀ(γ2 ⊙ dout) )
///     dx  = dx1  + LN1ᵀ( Attnᵀ(γ1 ⊙ dx1) )
///
/// (`Lᵀ(g)` is layer L's input-gradient map at the cached forward point.)
///
/// Memory: the frozen backward reads only x1, qkv (and A if stored), the FFN pre-activation
/// and the LayerNorm statistics, so those are the block's caches; n1, n2, the attention
/// output y, the FFN activation, the branch buffer and every backward work buffer are
/// borrowed from the backbone's `BlockScratch` arena, shared by all blocks and kept across
/// steps. With `sharedCaches` (recompute / inference) the caches go to the arena too:
/// one block's worth for all blocks.
public final class TransformerBlock: Module {
    public let channels: Int
    public let norm1: LayerNorm
    public let attn: Attention
    public let ls1: LayerScale?      // γ1 [C] (DINOv2 only)
    public let norm2: LayerNorm
    public let ffn: FeedForwardLayer
    public let ls2: LayerScale?      // γ2 [C] (DINOv2 only)

    private var x1Own = Tensor(zeros: [0])
    private var x1 = Tensor(zeros: [0])   // x1 of the last forward (own buffer or arena view)

    /// A block of `architecture` (its width, heads, FFN, LayerNorm eps and LayerScale);
    /// `rotary` is the backbone's shared RoPE table (EVA02), nil otherwise.
    public init(architecture a: BackboneArchitecture, rotary: RotaryPositionEmbedding? = nil) {
        let channels = a.channels
        self.channels = channels
        norm1 = LayerNorm(channels: channels, eps: a.normEps)
        attn = Attention(channels: channels, heads: a.heads)
        attn.inputGradientsOnly = true
        attn.rotary = rotary
        ls1 = a.hasLayerScale ? LayerScale(channels: channels, initValue: 1) : nil
        norm2 = LayerNorm(channels: channels, eps: a.normEps)
        switch a.feedForward {
        case .mlp(let h, let activation):
            let m = MLP(channels: channels, hiddenChannels: h, activation: activation)
            m.inputGradientsOnly = true
            ffn = .mlp(m)
        case .swiglu(let h, let subNorm):
            let m = SwiGLUFFN(channels: channels, hiddenChannels: h, subNormEps: subNorm ? a.normEps : nil)
            m.inputGradientsOnly = true
            ffn = .swiglu(m)
        }
        ls2 = a.hasLayerScale ? LayerScale(channels: channels, initValue: 1) : nil
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        norm1.parameters(prefix: prefix + "norm1.") + attn.parameters(prefix: prefix + "attn.")
            + (ls1?.parameters(prefix: prefix + "ls1.") ?? [])
            + norm2.parameters(prefix: prefix + "norm2.") + ffn.module.parameters(prefix: prefix + "mlp.")
            + (ls2?.parameters(prefix: prefix + "ls2.") ?? [])
    }

    /// input [B, T, C] → output [B, T, C] (written; may not alias input). `scratch` lends
    /// the work buffers (and, with `sharedCaches`, holds the caches: the backward must then
    /// follow before another block's forward uses the same scratch).
    public func forward(_ input: Tensor, into output: Tensor, scratch: BlockScratch, sharedCaches: Bool = false) {
        precondition(input.rank == 3 && input.shape[2] == channels && output.count == input.count,
                     "TransformerBlock: input \(input.shape), output \(output.shape), C = \(channels)")
        let shape = input.shape, rows = input.count / channels
        attn.arena = scratch
        attn.cachesInArena = sharedCaches
        ffn.lend(scratch, cachesInArena: sharedCaches)
        let n1 = scratch.tensor("block.n1", shape), n2 = scratch.tensor("block.n2", shape)
        let branch = scratch.tensor("block.branch", shape)
        if sharedCaches {
            x1Own = Tensor(zeros: [0])
            x1 = scratch.tensor("block.x1", shape)
        } else {
            if x1Own.shape != shape { x1Own = Tensor(zeros: shape) }
            x1 = x1Own
        }
        norm1.forward(input, into: n1)
        attn.forward(n1, into: branch)
        // x1 = x + γ1 ⊙ Attn(n1)
        residual(input, branch, ls1, into: x1, rows: rows)
        norm2.forward(x1, into: n2)
        ffn.forward(n2, into: branch)
        // out = x1 + γ2 ⊙ FFN(n2)
        residual(x1, branch, ls2, into: output, rows: rows)
    }

    /// Frozen backward: given dOutput = ∂L/∂out, *writes* ∂L/∂x into dInput (which may not
    /// alias dOutput). `input` is the forward's input; the caches must be that forward's.
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor, scratch: BlockScratch) {
        precondition(x1.shape == input.shape, "TransformerBlock: backward without a matching forward")
        let shape = input.shape, rows = input.count / channels
        let dBranch = scratch.tensor("block.dBranch", shape), dNorm = scratch.tensor("block.dNorm", shape)
        let dx1 = dInput                                      // dx accumulates on top of dx1
        // FFN branch: dx1 = dout + LN2ᵀ(FFNᵀ(γ2 ⊙ dout)). (The FFN and attention backward
        // read only the shape of their input.)
        ffn.backwardInput(dOutput: scaled(dOutput, ls2, into: dBranch, rows: rows), input: input, writing: dNorm)
        Kernels.copy(dOutput, into: dx1)
        norm2.backwardInput(dOutput: dNorm, input: x1, dInput: dx1)
        // Attention branch: dx = dx1 + LN1ᵀ(Attnᵀ(γ1 ⊙ dx1)).
        attn.backwardInput(dOutput: scaled(dx1, ls1, into: dBranch, rows: rows), input: input, dInput: dNorm,
                           accumulate: false)
        norm1.backwardInput(dOutput: dNorm, input: input, dInput: dInput)
    }

    /// `into = x + γ ⊙ branch`, or `x + branch` without LayerScale.
    private func residual(_ x: Tensor, _ branch: Tensor, _ scale: LayerScale?, into y: Tensor, rows: Int) {
        if let scale {
            Kernels.scaledResidual(x.data, branch.data, gamma: scale.gamma.value.data, into: y.data, rows: rows, channels: channels)
        } else {
            Kernels.add(x.data, branch.data, into: y.data, count: rows * channels)
        }
    }

    /// γ ⊙ g written into `buffer`, or g itself without LayerScale.
    private func scaled(_ g: Tensor, _ scale: LayerScale?, into buffer: Tensor, rows: Int) -> Tensor {
        guard let scale else { return g }
        Kernels.scaleChannels(g.data, gamma: scale.gamma.value.data, into: buffer.data, rows: rows, channels: channels)
        return buffer
    }

    /// Frees every activation cache held by the block itself (the next forward
    /// reallocates); buffers in the scratch arena stay with the arena.
    public func releaseCache() {
        x1Own = Tensor(zeros: [0])
        x1 = Tensor(zeros: [0])
        norm1.releaseCache()
        attn.releaseCache()
        norm2.releaseCache()
        ffn.releaseCache()
    }

    /// Floats held by this block's own x1 cache — for memory estimates.
    var cachedElements: Int { x1Own.count }
}

/// The FFN of a block: an MLP (DINOv2-S/B/L: GELU; CLIP: QuickGELU) or SwiGLU (DINOv2-g, EVA02).
public enum FeedForwardLayer {
    case mlp(MLP)
    case swiglu(SwiGLUFFN)

    public var module: Module {
        switch self {
        case .mlp(let m): return m
        case .swiglu(let m): return m
        }
    }

    func forward(_ input: Tensor, into output: Tensor) {
        switch self {
        case .mlp(let m): m.forward(input, into: output)
        case .swiglu(let m): m.forward(input, into: output)
        }
    }

    /// Writes (not accumulates) ∂L/∂input into `dInput`.
    func backwardInput(dOutput: Tensor, input: Tensor, writing dInput: Tensor) {
        switch self {
        case .mlp(let m): m.backwardInput(dOutput: dOutput, input: input, dInput: dInput, accumulate: false)
        case .swiglu(let m): m.backwardInput(dOutput: dOutput, input: input, dInput: dInput, accumulate: false)
        }
    }

    /// Lends the block's scratch arena to the FFN.
    func lend(_ arena: ScratchArena, cachesInArena: Bool) {
        switch self {
        case .mlp(let m):
            m.arena = arena
            m.cachesInArena = cachesInArena
        case .swiglu(let m):
            m.arena = arena
            m.cachesInArena = cachesInArena
        }
    }

    func releaseCache() {
        switch self {
        case .mlp(let m): m.releaseCache()
        case .swiglu(let m): m.releaseCache()
        }
    }
}

/// The work buffers shared by all blocks of a backbone (a `ScratchArena`).
public typealias BlockScratch = ScratchArena
