import Layers
import Numerics

/// One DINOv2 transformer block (official `NestedTensorBlock`, timm `Block`), pre-norm with
/// LayerScale:
///
///     n1  = LN1(x)                      x, n1 [B, T, C]   (LayerNorm eps 1e-6)
///     x1  = x  + γ1 ⊙ Attn(n1)          fused qkv [3C, C], softmax scale D^−½
///     n2  = LN2(x1)
///     out = x1 + γ2 ⊙ FFN(n2)           FFN: fc2(gelu(fc1 ·)) or w3(silu(x₁) ⊙ x₂)
///
/// The weights are frozen, so the backward computes input gradients only:
///
///     dx1 = dout + LN2ᵀ( FFNᵀ(γ2 ⊙ dout) )
///     dx  = dx1  + LN1ᵀ( Attnᵀ(γ1 ⊙ dx1) )
///
/// (`Lᵀ(g)` is layer L's input-gradient map at the cached forward point.) The forward caches
/// n1, x1, n2 and the layers cache their own activations; `releaseCache` frees all of it
/// (the backbone's recompute mode does so after each block). Backward scratch is borrowed
/// from the backbone (`BlockScratch`) so blocks share it.
public final class DINOv2Block: Module {
    public let channels: Int
    public let norm1: LayerNorm
    public let attn: Attention
    public let ls1: LayerScale       // γ1 [C]
    public let norm2: LayerNorm
    public let ffn: FeedForwardLayer
    public let ls2: LayerScale       // γ2 [C]

    private var n1 = Tensor(zeros: [0]), x1 = Tensor(zeros: [0]), n2 = Tensor(zeros: [0])

    public init(channels: Int, heads: Int, feedForward: DINOv2Architecture.FeedForward) {
        self.channels = channels
        norm1 = LayerNorm(channels: channels, eps: 1e-6)
        attn = Attention(channels: channels, heads: heads)
        ls1 = LayerScale(channels: channels, initValue: 1)
        norm2 = LayerNorm(channels: channels, eps: 1e-6)
        switch feedForward {
        case .mlp(let h): ffn = .mlp(MLP(channels: channels, hiddenChannels: h))
        case .swiglu(let h): ffn = .swiglu(SwiGLUFFN(channels: channels, hiddenChannels: h))
        }
        ls2 = LayerScale(channels: channels, initValue: 1)
    }

    public func parameters(prefix: String) -> [NamedParameter] {
        norm1.parameters(prefix: prefix + "norm1.") + attn.parameters(prefix: prefix + "attn.")
            + ls1.parameters(prefix: prefix + "ls1.")
            + norm2.parameters(prefix: prefix + "norm2.") + ffn.module.parameters(prefix: prefix + "mlp.")
            + ls2.parameters(prefix: prefix + "ls2.")
    }

    /// input [B, T, C] → output [B, T, C] (written; may not alias input). `scratch` lends
    /// the branch buffer.
    public func forward(_ input: Tensor, into output: Tensor, scratch: BlockScratch) {
        precondition(input.rank == 3 && input.shape[2] == channels && output.count == input.count,
                     "DINOv2Block: input \(input.shape), output \(output.shape), C = \(channels)")
        if n1.shape != input.shape {
            n1 = Tensor(zeros: input.shape)
            x1 = Tensor(zeros: input.shape)
            n2 = Tensor(zeros: input.shape)
        }
        let branch = scratch.ensure(0, input.shape)
        norm1.forward(input, into: n1)
        attn.forward(n1, into: branch)
        x1.copy(from: input)
        ls1.forward(branch, into: x1, accumulate: true)      // x1 = x + γ1 ⊙ Attn(n1)
        norm2.forward(x1, into: n2)
        ffn.forward(n2, into: branch)
        output.copy(from: x1)
        ls2.forward(branch, into: output, accumulate: true)  // out = x1 + γ2 ⊙ FFN(n2)
    }

    /// Frozen backward: given dOutput = ∂L/∂out, *writes* ∂L/∂x into dInput (which may not
    /// alias dOutput). `input` is the forward's input; the caches must be that forward's.
    public func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor, scratch: BlockScratch) {
        precondition(n1.shape == input.shape, "DINOv2Block: backward without a matching forward")
        let dBranch = scratch.ensure(0, input.shape), dNorm = scratch.ensure(1, input.shape)
        let dx1 = dInput                                      // dx accumulates on top of dx1
        // FFN branch: dx1 = dout + LN2ᵀ(FFNᵀ(γ2 ⊙ dout)).
        dBranch.zero()
        ls2.backwardInput(dOutput: dOutput, dInput: dBranch)
        dNorm.zero()
        ffn.backwardInput(dOutput: dBranch, input: n2, dInput: dNorm)
        dx1.copy(from: dOutput)
        norm2.backwardInput(dOutput: dNorm, input: x1, dInput: dx1)
        // Attention branch: dx = dx1 + LN1ᵀ(Attnᵀ(γ1 ⊙ dx1)).
        dBranch.zero()
        ls1.backwardInput(dOutput: dx1, dInput: dBranch)
        dNorm.zero()
        attn.backwardInput(dOutput: dBranch, input: n1, dInput: dNorm)
        norm1.backwardInput(dOutput: dNorm, input: input, dInput: dInput)
    }

    /// Frees every activation cache (the next forward reallocates).
    public func releaseCache() {
        n1 = Tensor(zeros: [0])
        x1 = Tensor(zeros: [0])
        n2 = Tensor(zeros: [0])
        norm1.releaseCache()
        attn.releaseCache()
        norm2.releaseCache()
        ffn.releaseCache()
    }

    /// Bytes held by this block's own caches (n1, x1, n2) — for memory estimates.
    var cachedElements: Int { n1.count + x1.count + n2.count }
}

/// The FFN of a block: GELU MLP (ViT-S/B/L) or SwiGLU (ViT-g).
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

    func backwardInput(dOutput: Tensor, input: Tensor, dInput: Tensor) {
        switch self {
        case .mlp(let m): m.backwardInput(dOutput: dOutput, input: input, dInput: dInput)
        case .swiglu(let m): m.backwardInput(dOutput: dOutput, input: input, dInput: dInput)
        }
    }

    func releaseCache() {
        switch self {
        case .mlp(let m): m.releaseCache()
        case .swiglu(let m): m.releaseCache()
        }
    }
}

/// Backward scratch shared by all blocks of a backbone ([B, T, C] buffers by slot).
public final class BlockScratch {
    private var slots: [Tensor] = []
    public init() {}
    func ensure(_ slot: Int, _ shape: [Int]) -> Tensor {
        while slots.count <= slot { slots.append(Tensor(zeros: [0])) }
        if slots[slot].shape != shape { slots[slot] = Tensor(zeros: shape) }
        return slots[slot]
    }
    public func release() { slots = [] }
}
