import Core
import Foundation
import Layers
import Numerics

/// The frozen ViT backbone — DINOv2, EVA02 or CLIP (reference §Backbone, "EVA02 and CLIP") —
/// with a `BlockAdapter` hook after every block.
///
///     p      = PatchEmbed(img)                       img [B, 3, H, W] → p [B, N, C], N = h·w
///     x₀     = [cls + pos₀, reg₁..reg_R, p + pos₁..N]   x₀ [B, T, C], T = 1 + R + N
///              (CLIP: then x₀ = ln_pre(x₀))
///     x_{i+1} = A_i(Block_i(x_i))                      i = 0..L−1, A_i the adapter (identity if none)
///
/// The families differ only inside the blocks (`TransformerBlock`) and in the embedding:
/// EVA02 rotates q and k of the patch tokens by a 2-D RoPE whose table is built here for
/// the load-time grid; CLIP's patch convolution has no bias and its tokens pass `ln_pre`.
///
/// The position embedding covers cls and the patch grid; register tokens are inserted after
/// it is added (official `prepare_tokens_with_masks`). The grid `h×w = ⌊H/P⌋×⌊W/P⌋` is fixed
/// at load time: the checkpoint's position grid and (for P ≠ the checkpoint's patch size) its
/// patch kernel are resampled once with PyTorch's bicubic (`align_corners=False`, A = −0.75),
/// as Rein's `convert_dinov2` does.
///
/// Backward is frozen: no weight gradients; it returns ∂L/∂x₀ and, on the way, calls each
/// adapter's backward so the adapter's own parameters get their gradients.
///
/// Memory plan: the forward keeps the token sequences x₀…x_L ([B, T, C] each). With
/// `recompute = false` every block also keeps what its frozen backward reads from its
/// forward to its backward (x1, qkv, the FFN pre-activation, LayerNorm statistics, and the
/// attention matrix [B, NH, T, T] when `storesAttentionProbabilities`), in buffers that stay
/// allocated from step to step; everything else (n1, n2, attention output, FFN activation,
/// backward work buffers) lives in one scratch arena shared by all blocks. With
/// `recompute = true` (and for `forward(forBackward: false)`) the blocks' caches live in
/// that arena too, one block's worth, rebuilt from x_i right before the block's backward.
public final class VisionTransformer: Module {
    public let architecture: BackboneArchitecture
    public let patchSize: Int
    public let imageHeight: Int
    public let imageWidth: Int
    public let grid: (h: Int, w: Int)

    public let patchEmbed: PatchEmbed
    public let clsToken: Parameter        // [1, 1, C]
    public let posEmbed: Parameter        // [1, 1 + h·w, C]
    public let registerTokens: Parameter? // [1, R, C]
    /// CLIP's `ln_pre`; nil for the other families.
    public let preNorm: LayerNorm?
    /// EVA02's RoPE table for this grid, shared by every block; nil for the other families.
    public let rotary: RotaryPositionEmbedding?
    public let blocks: [TransformerBlock]

    /// Called after every block (PEFT); nil runs the bare backbone.
    public var adapter: BlockAdapter?
    /// Recompute each block's activations during backward instead of keeping them.
    public var recompute: Bool
    /// Whether blocks keep their attention matrices [B, NH, T, T] for the backward (faster)
    /// or recompute them there (`Attention.storesProbabilities`: one more q kᵀ product and
    /// softmax per head, much less memory at long sequences). Default: kept when they take
    /// no more room than the block's other caches, `NH·T ≤ 8·C` floats per token (ViT-S/B/L
    /// at 224², not ViT-L at 512²).
    public var storesAttentionProbabilities: Bool = true {
        didSet { for b in blocks { b.attn.storesProbabilities = storesAttentionProbabilities } }
    }

    /// x₀…x_L of the last forward.
    public private(set) var tokens: [Tensor] = []
    private var blockOutput = Tensor(zeros: [0])      // pre-adapter output of the current block
    private var gradientA = Tensor(zeros: [0]), gradientB = Tensor(zeros: [0]), gradientBlock = Tensor(zeros: [0])
    private var patches = Tensor(zeros: [0])
    private var embedded = Tensor(zeros: [0])    // x₀ before ln_pre (CLIP)
    private let scratch = BlockScratch()
    private var batch = 0
    private var canBackward = false

    /// A backbone with zero weights; fill them with `load(_:)` or `randomize(seed:)`.
    public convenience init(architecture: BackboneArchitecture, imageSize: Int, patchSize: Int = 14, recompute: Bool = false) {
        self.init(architecture: architecture, imageHeight: imageSize, imageWidth: imageSize,
                  patchSize: patchSize, recompute: recompute)
    }

    public init(architecture: BackboneArchitecture, imageHeight: Int, imageWidth: Int, patchSize: Int, recompute: Bool = false) {
        precondition(imageHeight >= patchSize && imageWidth >= patchSize && patchSize > 0,
                     "DINOv2: image \(imageHeight)×\(imageWidth) smaller than patch \(patchSize)")
        self.architecture = architecture
        self.patchSize = patchSize
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        grid = (imageHeight / patchSize, imageWidth / patchSize)
        self.recompute = recompute
        let c = architecture.channels
        patchEmbed = PatchEmbed(patchSize: patchSize, inChannels: 3, embedDim: c, bias: architecture.hasPatchBias)
        clsToken = Parameter(zeros: [1, 1, c])
        posEmbed = Parameter(zeros: [1, 1 + grid.h * grid.w, c])
        registerTokens = architecture.registers > 0 ? Parameter(zeros: [1, architecture.registers, c]) : nil
        preNorm = architecture.hasPreNorm ? LayerNorm(channels: c, eps: architecture.normEps) : nil
        let rotary = architecture.hasRotaryEmbedding
            ? RotaryPositionEmbedding(headDim: architecture.headDim, grid: grid, prefixTokens: architecture.prefixTokens) : nil
        self.rotary = rotary
        blocks = (0..<architecture.depth).map { _ in TransformerBlock(architecture: architecture, rotary: rotary) }
        storesAttentionProbabilities = architecture.heads * (architecture.prefixTokens + grid.h * grid.w) <= 8 * c
        for b in blocks { b.attn.storesProbabilities = storesAttentionProbabilities }
    }

    /// Canonical names (`BackboneWeights`): `cls_token`, `pos_embed`, `register_tokens`,
    /// `patch_embed.proj.*`, `norm_pre.*`, `blocks.<i>.*`.
    public func parameters(prefix: String) -> [NamedParameter] {
        var list = [NamedParameter(name: prefix + "cls_token", parameter: clsToken),
                    NamedParameter(name: prefix + "pos_embed", parameter: posEmbed)]
        if let r = registerTokens { list.append(NamedParameter(name: prefix + "register_tokens", parameter: r)) }
        list += patchEmbed.parameters(prefix: prefix + "patch_embed.")
        if let preNorm { list += preNorm.parameters(prefix: prefix + "norm_pre.") }
        for (i, b) in blocks.enumerated() { list += b.parameters(prefix: prefix + "blocks.\(i).") }
        return list
    }

    /// Tokens in front of the patches (cls + registers).
    public var prefixTokens: Int { architecture.prefixTokens }
    /// Tokens per image: 1 + R + h·w.
    public var tokenCount: Int { prefixTokens + grid.h * grid.w }
    public var channels: Int { architecture.channels }

    // MARK: weights

    /// How the position grid is resampled when the checkpoint's grid differs from the model's.
    public enum PositionInterpolation: String, Sendable, Decodable {
        /// `F.interpolate(size=(h, w), mode="bicubic", align_corners=False)` — Rein's
        /// converter and Hugging Face's `Dinov2Model` (reference §Backbone; the default).
        case converter = "bicubic"
        /// The official repository's hub forward at another resolution:
        /// `scale_factor = ((h + 0.1)/M, (w + 0.1)/M)`, no antialiasing.
        case officialHub = "official_hub"
        /// `F.interpolate(size=(h, w), mode="bilinear", align_corners=False)` — how Rein
        /// resizes CLIP's positions.
        case bilinear
    }

    /// Copies `weights` in (validated against the architecture), resampling the position
    /// grid and patch kernel to this model's grid and patch size.
    public func load(_ weights: BackboneWeights, positionInterpolation: PositionInterpolation = .converter) throws {
        try weights.validate(for: architecture)
        let c = channels
        for p in parameters(prefix: "") {
            switch p.name {
            case "pos_embed":
                let source = weights.tensors["pos_embed"]!
                let sourceGrid = weights.positionGrid!
                posEmbed.value.copy(from: VisionTransformer.resamplePositionEmbedding(source, from: (sourceGrid, sourceGrid),
                                                                         to: grid, channels: c,
                                                                         interpolation: positionInterpolation))
            case "patch_embed.proj.weight":
                let source = weights.tensors["patch_embed.proj.weight"]!
                patchEmbed.weight.value.copy(from: VisionTransformer.resamplePatchKernel(source, to: patchSize))
            default:
                guard let t = weights.tensors[p.name] else {
                    throw CausalTuneError("weights file \(weights.path): missing tensor '\(p.name)'")
                }
                p.parameter.value.copy(from: t)
            }
        }
    }

    /// Seeded random weights (debug runs, benchmarks, tests): linear and patch weights
    /// N(0, 0.02²), biases 0, LayerNorm γ = 1 and β = 0 (`ln_pre`, the sub-LayerNorm too),
    /// LayerScale γ = 0.1, cls, registers and position embedding N(0, 0.02²).
    public func randomize(seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        for p in parameters(prefix: "") {
            let v = p.parameter.value
            if p.name.hasSuffix(".bias") {
                v.zero()
            } else if p.name.contains(".norm1.") || p.name.contains(".norm2.") || p.name.hasPrefix("norm_pre.")
                        || p.name.contains(".ffn_ln.") {
                v.fill(1)
            } else if p.name.hasSuffix(".gamma") {
                v.fill(0.1)
            } else {
                rng.fillNormal(v, mean: 0, std: 0.02)
            }
        }
    }

    /// pos [1, 1 + gh·gw, C] → [1, 1 + h·w, C]: the cls entry kept, the patch grid resampled
    /// bicubically (`F.interpolate(size=(h, w), mode="bicubic", align_corners=False)`).
    public static func resamplePositionEmbedding(_ pos: Tensor, from source: (Int, Int), to target: (h: Int, w: Int),
                                                 channels c: Int, interpolation: PositionInterpolation = .converter) -> Tensor {
        let out = Tensor(zeros: [1, 1 + target.h * target.w, c])
        out.data.update(from: pos.data, count: c)
        if source == (target.h, target.w) {
            (out.data + c).update(from: pos.data + c, count: target.h * target.w * c)
            return out
        }
        // [g², C] (channels last) → [C, gh, gw] planes → resample → back to channels last.
        let (sh, sw) = source
        let planes = Tensor(zeros: [c, sh, sw])
        for n in 0..<(sh * sw) {
            for ch in 0..<c { planes.data[ch * sh * sw + n] = pos.data[c + n * c + ch] }
        }
        let resized = Tensor(zeros: [c, target.h, target.w])
        var factor: (h: Double, w: Double)? = nil
        if interpolation == .officialHub {
            // torch evaluates (g + 0.1) / M in Python doubles.
            factor = ((Double(target.h) + 0.1) / Double(sh), (Double(target.w) + 0.1) / Double(sw))
        }
        if interpolation == .bilinear {
            Resample.bilinear(planes.reshaped([1, c, sh, sw]), into: resized.reshaped([1, c, target.h, target.w]))
        } else {
            Resample.bicubic(planes.reshaped([1, c, sh, sw]), into: resized.reshaped([1, c, target.h, target.w]),
                             scaleFactor: factor)
        }
        for n in 0..<(target.h * target.w) {
            for ch in 0..<c { out.data[c + n * c + ch] = resized.data[ch * target.h * target.w + n] }
        }
        return out
    }

    /// kernel [C, 3, p, p] → [C, 3, P, P] bicubically (identity when p = P).
    public static func resamplePatchKernel(_ kernel: Tensor, to size: Int) -> Tensor {
        if kernel.shape[2] == size && kernel.shape[3] == size { return kernel.clone() }
        let planes = kernel.shape[0] * kernel.shape[1]
        let out = Tensor(zeros: [kernel.shape[0], kernel.shape[1], size, size])
        Resample.bicubic(kernel.reshaped([1, planes, kernel.shape[2], kernel.shape[3]]),
                         into: out.reshaped([1, planes, size, size]))
        return out
    }

    // MARK: forward

    /// images [B, 3, H, W] (H, W = the load-time image size) → x₀…x_L in `tokens`; returns x_L.
    /// `observe(i, y)` sees each block's output before the adapter (for feature dumps).
    /// `forBackward: false` (evaluation, dumps) frees each block's caches right after its
    /// forward, as recompute mode does; `backward` then may not be called.
    @discardableResult
    public func forward(_ images: Tensor, forBackward: Bool = true, observe: ((Int, Tensor) -> Void)? = nil) -> Tensor {
        precondition(images.rank == 4 && images.shape[1] == 3 && images.shape[2] == imageHeight && images.shape[3] == imageWidth,
                     "DINOv2: images \(images.shape), expected [B, 3, \(imageHeight), \(imageWidth)]")
        let B = images.shape[0], T = tokenCount, C = channels, L = blocks.count
        if batch != B || tokens.count != L + 1 {
            batch = B
            tokens = (0...L).map { _ in Tensor(zeros: [B, T, C]) }
            blockOutput = Tensor(zeros: [0])
            gradientA = Tensor(zeros: [0])
            gradientB = Tensor(zeros: [0])
            gradientBlock = Tensor(zeros: [0])
        }
        if let preNorm {
            if embedded.shape != [B, T, C] { embedded = Tensor(zeros: [B, T, C]) }
            embed(images, into: embedded)
            preNorm.forward(embedded, into: tokens[0])
            preNorm.releaseCache()   // frozen and first: nothing needs its statistics
        } else {
            embed(images, into: tokens[0])
        }
        for i in 0..<L {
            let target: Tensor
            if adapter != nil {
                if blockOutput.shape != [B, T, C] { blockOutput = Tensor(zeros: [B, T, C]) }
                target = blockOutput
            } else {
                target = tokens[i + 1]
            }
            blocks[i].forward(tokens[i], into: target, scratch: scratch, sharedCaches: recompute || !forBackward)
            if recompute || !forBackward { blocks[i].releaseCache() }
            observe?(i, target)
            if let adapter {
                adapter.forward(layer: i, input: target, output: tokens[i + 1], prefixTokens: prefixTokens,
                                grid: (grid.h, grid.w))
            }
        }
        canBackward = forBackward
        return tokens[L]
    }

    /// x₀ = [cls + pos₀, registers, patches + pos₁..N] for every image.
    private func embed(_ images: Tensor, into x0: Tensor) {
        let B = images.shape[0], C = channels, N = grid.h * grid.w, R = architecture.registers, T = tokenCount
        if patches.shape != [B, N, C] { patches = Tensor(zeros: [B, N, C]) }
        patchEmbed.forward(images, into: patches)
        patchEmbed.releaseCache()   // its cols cache only serves a weight backward we never run
        let cls = clsToken.value.data, pos = posEmbed.value.data, reg = registerTokens?.value.data
        let p = patches.data, x = x0.data
        for b in 0..<B {
            let xb = x + b * T * C
            for c in 0..<C { xb[c] = cls[c] + pos[c] }
            if let reg { (xb + C).update(from: reg, count: R * C) }
        }
        // Split by patch row, not by image: with batch 1 the whole pass ran on one thread.
        Parallel.forEach(B * N, grain: Swift.max(1, Kernels.elementGrain / C)) { range in
            for r in range {
                let b = r / N, i = r % N
                let xr = x + (b * T + 1 + R + i) * C, pr = p + r * C, pp = pos + (1 + i) * C
                for c in 0..<C { xr[c] = pr[c] + pp[c] }
            }
        }
    }

    /// The post-adapter tokens of block `i` from the last forward, [B, T, C].
    public func output(ofBlock i: Int) -> Tensor { tokens[i + 1] }

    /// Patch tokens of `t` [B, T, C] as a channels-first map [B, C, h, w] (new tensor).
    public func spatialMap(_ t: Tensor) -> Tensor {
        let B = t.shape[0], T = t.shape[1], C = t.shape[2], N = grid.h * grid.w, P = prefixTokens
        let out = Tensor(zeros: [B, C, grid.h, grid.w])
        let src = t.data, dst = out.data
        Parallel.forEach(B * C) { range in
            for bc in range {
                let b = bc / C, c = bc % C
                let s = src + b * T * C + P * C + c, d = dst + bc * N
                for n in 0..<N { d[n] = s[n * C] }
            }
        }
        return out
    }

    // MARK: backward

    /// Frozen backward after `forward`. `outputGradients[i]` is ∂L/∂x_{i+1} [B, T, C]
    /// (the post-adapter tokens of block i, e.g. from the head; blocks not listed get none).
    /// Calls the adapter's backward for every layer and returns ∂L/∂x₀ [B, T, C] (a buffer
    /// owned by the backbone, valid until the next backward). One backward per forward.
    ///
    /// `inputGradient: false` (training: the images and the frozen embedding need no
    /// gradient) skips what only ∂L/∂x₀ needs — block 0's backward, as autograd does when
    /// nothing below the first adapter requires a gradient — and returns an empty tensor.
    @discardableResult
    public func backward(outputGradients: [Int: Tensor], inputGradient: Bool = true) -> Tensor {
        let L = blocks.count, B = batch, T = tokenCount, C = channels
        precondition(tokens.count == L + 1 && B > 0 && canBackward, "DINOv2: backward without a forward(forBackward: true)")
        for (i, g) in outputGradients {
            precondition(i >= 0 && i < L && g.count == B * T * C, "DINOv2: gradient for block \(i) has shape \(g.shape)")
        }
        if gradientA.shape != [B, T, C] {
            gradientA = Tensor(zeros: [B, T, C])
            gradientB = Tensor(zeros: [B, T, C])
        }
        if !inputGradient && adapter == nil {
            canBackward = false   // nothing trainable below the outputs
            return Tensor(zeros: [0])
        }
        var g = gradientA, next = gradientB
        Kernels.zero(g)
        for i in stride(from: L - 1, through: 0, by: -1) {
            if let dOut = outputGradients[i] { Kernels.axpy(1, dOut, g) }
            var dBlock = g
            if recompute || adapter != nil {
                if blockOutput.shape != [B, T, C] { blockOutput = Tensor(zeros: [B, T, C]) }
            }
            if recompute {
                blocks[i].forward(tokens[i], into: blockOutput, scratch: scratch, sharedCaches: true)
            }
            if let adapter {
                if recompute {
                    // Rebuild the adapter's cache for this layer (its output is x_{i+1} again).
                    if gradientBlock.shape != [B, T, C] { gradientBlock = Tensor(zeros: [B, T, C]) }
                    adapter.forward(layer: i, input: blockOutput, output: gradientBlock, prefixTokens: prefixTokens,
                                    grid: (grid.h, grid.w))
                }
                if gradientBlock.shape != [B, T, C] { gradientBlock = Tensor(zeros: [B, T, C]) }
                Kernels.zero(gradientBlock)
                adapter.backward(layer: i, dOutput: g, dInput: gradientBlock, prefixTokens: prefixTokens,
                                 grid: (grid.h, grid.w))
                dBlock = gradientBlock
            }
            if i == 0 && !inputGradient {
                if recompute { blocks[i].releaseCache() }
                canBackward = false
                return Tensor(zeros: [0])
            }
            blocks[i].backwardInput(dOutput: dBlock, input: tokens[i], dInput: next, scratch: scratch)
            // Without recompute the block's caches stay allocated for the next step's forward
            // (no allocation and first touch of fresh pages every step).
            if recompute { blocks[i].releaseCache() }
            swap(&g, &next)
        }
        canBackward = false   // the caches are spent; the next backward needs a new forward
        return g
    }

    /// Frees every activation cache and token buffer.
    public func releaseActivations() {
        for b in blocks { b.releaseCache() }
        patchEmbed.releaseCache()
        scratch.release()
        tokens = []
        blockOutput = Tensor(zeros: [0])
        gradientA = Tensor(zeros: [0])
        gradientB = Tensor(zeros: [0])
        gradientBlock = Tensor(zeros: [0])
        patches = Tensor(zeros: [0])
        embedded = Tensor(zeros: [0])
        batch = 0
    }
}
