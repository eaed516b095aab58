import Numerics

/// The shape of a DINOv2 ViT (reference §Backbone):
///
/// | arch | C | blocks | heads | FFN |
/// | --- | --- | --- | --- | --- |
/// | `dinov2_vits14` | 384 | 12 | 6 | MLP 4C, GELU |
/// | `dinov2_vitb14` | 768 | 12 | 12 | MLP 4C, GELU |
/// | `dinov2_vitl14` | 1024 | 24 | 16 | MLP 4C, GELU |
/// | `dinov2_vitg14` | 1536 | 40 | 24 | SwiGLU, hidden 4096 |
/// | `dinov2_vitt14` | 192 | 12 | 3 | MLP 4C, GELU (debug addition: random weights only) |
///
/// `_reg4` adds 4 register tokens. The SwiGLU hidden width follows the official
/// `SwiGLUFFNFused`: `(⌊4C · 2/3⌋ + 7) / 8 · 8`. Tests build tiny custom architectures with
/// the memberwise initialiser.
public struct DINOv2Architecture: Equatable, Sendable, CustomStringConvertible {
    public enum FeedForward: Equatable, Sendable {
        /// `fc2(gelu(fc1(x)))`, fc1 `[hidden, C]`.
        case mlp(hidden: Int)
        /// `w3(silu(x₁) ⊙ x₂)` with `[x₁ | x₂] = w12(x)`, w12 `[2·hidden, C]`.
        case swiglu(hidden: Int)

        public var hidden: Int {
            switch self {
            case .mlp(let h), .swiglu(let h): return h
            }
        }
    }

    public var name: String
    public var channels: Int      // C
    public var depth: Int         // L
    public var heads: Int         // NH
    public var feedForward: FeedForward
    public var registers: Int     // R

    public init(name: String, channels: Int, depth: Int, heads: Int, feedForward: FeedForward, registers: Int) {
        precondition(channels % heads == 0, "channels \(channels) not divisible by heads \(heads)")
        self.name = name
        self.channels = channels
        self.depth = depth
        self.heads = heads
        self.feedForward = feedForward
        self.registers = registers
    }

    /// The architectures `model.backbone.arch` accepts.
    public static let names = [
        "dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14",
        "dinov2_vits14_reg4", "dinov2_vitb14_reg4", "dinov2_vitl14_reg4", "dinov2_vitg14_reg4",
        "dinov2_vitt14",
    ]

    /// The official architecture `name` (`dinov2_vitl14`, `dinov2_vitg14_reg4`, …).
    public static func named(_ name: String) throws -> DINOv2Architecture {
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
        guard let (c, depth, heads) = table[base] else {
            throw CausalTuneError("model.backbone.arch: unknown architecture '\(name)' (expected one of \(names.joined(separator: ", ")))")
        }
        let ffn: FeedForward = base == "dinov2_vitg14" ? .swiglu(hidden: swigluHidden(c)) : .mlp(hidden: 4 * c)
        return DINOv2Architecture(name: name, channels: c, depth: depth, heads: heads, feedForward: ffn, registers: registers)
    }

    /// The official SwiGLU hidden width for `channels` (4096 for 1536).
    public static func swigluHidden(_ channels: Int) -> Int { (4 * channels * 2 / 3 + 7) / 8 * 8 }

    /// The official name of a shape, or nil for a custom one.
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
        case .mlp(let h): ffnParams = h * c + h + c * h + c
        case .swiglu(let h): ffnParams = 2 * h * c + 2 * h + c * h + c
        }
        let block = 4 * c + (3 * c * c + 3 * c) + (c * c + c) + 2 * c + ffnParams
        return depth * block + c * 3 * patchSize * patchSize + c + c * (1 + gridTokens) + c + registers * c
    }
}
