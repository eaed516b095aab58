import Core
import Layers

/// The shape of a frozen ViT backbone (reference §Backbone, "EVA02 and CLIP"). Three
/// families share one transformer (`VisionTransformer`, `TransformerBlock`) and differ in
/// the parts below:
///
/// | family | arch | C | blocks | heads | FFN | other |
/// | --- | --- | --- | --- | --- | --- | --- |
/// | DINOv2 | `dinov2_vits14` / `b14` / `l14` | 384 / 768 / 1024 | 12 / 12 / 24 | 6 / 12 / 16 | MLP 4C, GELU | LayerScale, LN eps 1e-6 |
/// | | `dinov2_vitg14` | 1536 | 40 | 24 | SwiGLU, hidden 4096 | |
/// | | `dinov2_vitt14` | 192 | 12 | 3 | MLP 4C, GELU | debug addition: random weights only |
/// | EVA02 | `eva02_vitt14` / `s14` / `b14` / `l14` | 192 / 384 / 768 / 1024 | 12 / 12 / 12 / 24 | 3 / 6 / 12 / 16 | SwiGLU, hidden ⌊8C/3⌋; B/L with a sub-LayerNorm | 2-D RoPE, q/v biases, LN eps 1e-6 |
/// | CLIP | `clip_vitb16` / `clip_vitl14` | 768 / 1024 | 12 / 24 | 12 / 16 | MLP 4C, QuickGELU | `ln_pre`, no patch bias, LN eps 1e-5 |
///
/// DINOv2's `_reg4` adds 4 register tokens. The DINOv2 SwiGLU hidden width follows the
/// official `SwiGLUFFNFused`: `(⌊4C · 2/3⌋ + 7) / 8 · 8`. An EVA02 weights file decides
/// whether its blocks have the sub-LayerNorm (the released T/S do not, B/L do); `weights:
/// random` uses the released layout of the size. Tests build tiny custom architectures with
/// the memberwise initialiser.
public struct BackboneArchitecture: Equatable, Sendable, CustomStringConvertible {
    /// Which pretrained model's conventions the backbone follows.
    public enum Family: String, Equatable, Sendable, CaseIterable {
        /// Meta's DINOv2: LayerScale, optional registers.
        case dinov2
        /// EVA02 (masked image modelling, as Rein uses it): RoPE, SwiGLU, no LayerScale.
        case eva02
        /// OpenAI CLIP's visual tower: `ln_pre`, QuickGELU, no patch bias.
        case clip
    }

    public enum FeedForward: Equatable, Sendable {
        /// `fc2(act(fc1(x)))`, fc1 `[hidden, C]`.
        case mlp(hidden: Int, activation: MLP.Activation = .gelu)
        /// `w3(LN(silu(x₁) ⊙ x₂))` with `[x₁ | x₂] = w12(x)`, w12 `[2·hidden, C]`; LN only
        /// with `subNorm` (EVA02-B/L's `ffn_ln`).
        case swiglu(hidden: Int, subNorm: Bool = false)

        public var hidden: Int {
            switch self {
            case .mlp(let h, _), .swiglu(let h, _): return h
            }
        }
    }

    public var name: String
    public var family: Family
    public var channels: Int      // C
    public var depth: Int         // L
    public var heads: Int         // NH
    public var feedForward: FeedForward
    public var registers: Int     // R
    /// The patch size of the released weights (the default `patch_size`).
    public var nativePatchSize: Int

    public init(name: String, family: Family = .dinov2, channels: Int, depth: Int, heads: Int, feedForward: FeedForward,
                registers: Int, nativePatchSize: Int = 14) {
        precondition(channels % heads == 0, "channels \(channels) not divisible by heads \(heads)")
        self.name = name
        self.family = family
        self.channels = channels
        self.depth = depth
        self.heads = heads
        self.feedForward = feedForward
        self.registers = registers
        self.nativePatchSize = nativePatchSize
    }

    /// DINOv2's blocks scale each branch by a learned γ (LayerScale); EVA02's and CLIP's do not.
    public var hasLayerScale: Bool { family == .dinov2 }
    /// LayerNorm eps of the blocks (and `ln_pre`, the sub-LayerNorm).
    public var normEps: Float { family == .clip ? 1e-5 : 1e-6 }
    /// Whether the patch convolution has a bias (CLIP's has none).
    public var hasPatchBias: Bool { family != .clip }
    /// CLIP's `ln_pre` on the embedded tokens before block 0.
    public var hasPreNorm: Bool { family == .clip }
    /// EVA02's rotary position embedding on q and k.
    public var hasRotaryEmbedding: Bool { family == .eva02 }

    /// The architectures `model.backbone.arch` accepts.
    public static let names = [
        "dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14",
        "dinov2_vits14_reg4", "dinov2_vitb14_reg4", "dinov2_vitl14_reg4", "dinov2_vitg14_reg4",
        "dinov2_vitt14",
        "eva02_vitt14", "eva02_vits14", "eva02_vitb14", "eva02_vitl14",
        "clip_vitb16", "clip_vitl14",
    ]

    /// The architecture `name` (`dinov2_vitl14`, `dinov2_vitg14_reg4`, `eva02_vitl14`,
    /// `clip_vitb16`, …). `eva02SubNorm` overrides the released EVA02 block layout (a weights
    /// file that has, or lacks, the sub-LayerNorm).
    public static func named(_ name: String, eva02SubNorm: Bool? = nil) throws -> BackboneArchitecture {
        let unknown = CausalTuneError("model.backbone.arch: unknown architecture '\(name)' (expected one of \(names.joined(separator: ", ")))")
        if name.hasPrefix("eva02_") {
            let table: [String: (Int, Int, Int)] = [
                "eva02_vitt14": (192, 12, 3), "eva02_vits14": (384, 12, 6),
                "eva02_vitb14": (768, 12, 12), "eva02_vitl14": (1024, 24, 16),
            ]
            guard let (c, depth, heads) = table[name] else { throw unknown }
            let subNorm = eva02SubNorm ?? (c >= 768)
            return BackboneArchitecture(name: name, family: .eva02, channels: c, depth: depth, heads: heads,
                                        feedForward: .swiglu(hidden: eva02Hidden(c), subNorm: subNorm), registers: 0)
        }
        if name.hasPrefix("clip_") {
            let table: [String: (Int, Int, Int, Int)] = [
                "clip_vitb16": (768, 12, 12, 16), "clip_vitl14": (1024, 24, 16, 14),
            ]
            guard let (c, depth, heads, patch) = table[name] else { throw unknown }
            return BackboneArchitecture(name: name, family: .clip, channels: c, depth: depth, heads: heads,
                                        feedForward: .mlp(hidden: 4 * c, activation: .quickGELU), registers: 0,
                                        nativePatchSize: patch)
        }
        var base = name
        var registers = 0
        if base.hasSuffix("_reg4") {
            base.removeLast(5)
            registers = 4
        } else if base.hasSuffix("_reg") {
            base.removeLast(4)
            registers = 4
        }
        let table: [String: (Int, Int, Int)] = [
            "dinov2_vits14": (384, 12, 6), "dinov2_vitb14": (768, 12, 12),
            "dinov2_vitl14": (1024, 24, 16), "dinov2_vitg14": (1536, 40, 24),
            // Debug addition, not an official DINOv2 model: a ViT-Tiny shape for `weights:
            // random` runs on a laptop (configs/debug-synthetic.yaml).
            "dinov2_vitt14": (192, 12, 3),
        ]
        guard let (c, depth, heads) = table[base] else { throw unknown }
        let ffn: FeedForward = base == "dinov2_vitg14" ? .swiglu(hidden: swigluHidden(c)) : .mlp(hidden: 4 * c)
        return BackboneArchitecture(name: name, channels: c, depth: depth, heads: heads, feedForward: ffn, registers: registers)
    }

    /// The family an architecture name belongs to (nil for an unknown name).
    public static func family(of name: String) -> Family? {
        if name.hasPrefix("eva02_") { return .eva02 }
        if name.hasPrefix("clip_") { return .clip }
        if name.hasPrefix("dinov2_") { return .dinov2 }
        return nil
    }

    /// The official SwiGLU hidden width for `channels` (4096 for 1536).
    public static func swigluHidden(_ channels: Int) -> Int { (4 * channels * 2 / 3 + 7) / 8 * 8 }

    /// EVA02's SwiGLU hidden width, `int(C · 4·2/3)` as the released models compute it:
    /// ⌊8C/3⌋ (2730 for C = 1024).
    public static func eva02Hidden(_ channels: Int) -> Int { 8 * channels / 3 }

    /// The official name of a DINOv2 shape, or nil for a custom one.
    public static func officialName(channels: Int, depth: Int, registers: Int, swiglu: Bool) -> String? {
        let base: String
        switch (channels, depth, swiglu) {
        case (384, 12, false): base = "dinov2_vits14"
        case (768, 12, false): base = "dinov2_vitb14"
        case (1024, 24, false): base = "dinov2_vitl14"
        case (1536, 40, true): base = "dinov2_vitg14"
        default: return nil
        }
        switch registers {
        case 0: return base
        case 4: return base + "_reg4"
        default: return nil
        }
    }

    /// Tokens in front of the patches: cls and registers.
    public var prefixTokens: Int { 1 + registers }
    public var headDim: Int { channels / heads }

    public var description: String { name }

    /// Parameter count of the blocks and embeddings for a `grid` of patches of `patchSize`
    /// (what the model holds; the final norm and mask token are not used).
    public func parameterCount(patchSize: Int, gridTokens: Int) -> Int {
        let c = channels
        let ffnParams: Int
        switch feedForward {
        case .mlp(let h, _): ffnParams = h * c + h + c * h + c
        case .swiglu(let h, let subNorm): ffnParams = 2 * h * c + 2 * h + c * h + c + (subNorm ? 2 * h : 0)
        }
        let block = 4 * c + (3 * c * c + 3 * c) + (c * c + c) + (hasLayerScale ? 2 * c : 0) + ffnParams
        return depth * block + c * 3 * patchSize * patchSize + (hasPatchBias ? c : 0) + c + c * (1 + gridTokens)
            + (hasPreNorm ? 2 * c : 0) + registers * c
    }
}
