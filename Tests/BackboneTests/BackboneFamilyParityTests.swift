import Backbone
import Foundation
import Layers
import Numerics
import XCTest

/// EVA02 and CLIP against PyTorch (timm's `Eva`, cross-checked with the official EVA-02
/// code; transformers' `CLIPVisionModel`, cross-checked with OpenAI-style code): every
/// block's tokens for every weight naming and both EVA02 block layouts, the frozen backward,
/// and the load-time resampling (Fixtures/make_family_fixtures.py).
final class BackboneFamilyParityTests: XCTestCase {
    /// Tiny fixture architectures: C = 32, 2 heads, 2 blocks.
    static let eva02Fused = BackboneArchitecture(name: "tiny_eva02", family: .eva02, channels: 32, depth: 2, heads: 2,
                                                 feedForward: .swiglu(hidden: 85, subNorm: false), registers: 0)
    static let eva02Split = BackboneArchitecture(name: "tiny_eva02_subln", family: .eva02, channels: 32, depth: 2, heads: 2,
                                                 feedForward: .swiglu(hidden: 85, subNorm: true), registers: 0)
    static let clip = BackboneArchitecture(name: "tiny_clip", family: .clip, channels: 32, depth: 2, heads: 2,
                                           feedForward: .mlp(hidden: 128, activation: .quickGELU), registers: 0,
                                           nativePatchSize: 16)

    // MARK: EVA02

    func testEVA02FusedLayoutMatchesPyTorchInOfficialAndTimmNaming() throws {
        for file in ["eva02_fused.pth", "eva02_fused_timm.safetensors"] {
            try Fixtures.assertParity(file, "eva02_fused_56", Self.eva02Fused)
        }
    }

    func testEVA02SplitLayoutMatchesPyTorchInEveryNaming() throws {
        for file in ["eva02_split.pth", "eva02_split_timm.safetensors", "eva02_split_rein.pth"] {
            try Fixtures.assertParity(file, "eva02_split_56", Self.eva02Split)
        }
    }

    func testEVA02FrozenBackwardMatchesAutograd() throws {
        try Fixtures.assertFrozenBackward("eva02_split_timm.safetensors", "eva02_split_56", Self.eva02Split)
    }

    func testEVA02ResamplesPositionsAndKernelAndRecomputesTheRotaryTable() throws {
        // Position grid 4×4 → 5×5, kernel 14 → 16, RoPE coordinates i·16/5.
        let (model, _) = try Fixtures.assertParity("eva02_split.pth", "eva02_split_p16_80", Self.eva02Split)
        XCTAssertEqual(model.patchEmbed.weight.shape, [32, 3, 16, 16])
        XCTAssertTrue(model.rotary!.grid == (5, 5))
    }

    func testEVA02LayoutIsReadFromTheFile() throws {
        let fused = try BackboneWeights.read(Fixtures.path("eva02_fused_timm.safetensors"))
        let split = try BackboneWeights.read(Fixtures.path("eva02_split.pth"))
        XCTAssertEqual(try fused.inferArchitecture().feedForward, .swiglu(hidden: 85, subNorm: false))
        XCTAssertEqual(try split.inferArchitecture().feedForward, .swiglu(hidden: 85, subNorm: true))
        XCTAssertEqual(fused.naming, "timm")
        XCTAssertEqual(split.naming, "official")
        // The k part of the fused bias is zero (EVA02 has no k bias).
        let bias = split.tensors["blocks.0.attn.qkv.bias"]!
        XCTAssertEqual((32..<64).map { bias.data[$0] }, [Float](repeating: 0, count: 32))
        // A file of the other layout is refused for a fixed architecture, in one line.
        let model = VisionTransformer(architecture: Self.eva02Fused, imageSize: 56, patchSize: 14)
        assertCausalTuneError(["ffn_ln", "tiny_eva02"]) { try model.load(split) }
    }

    // MARK: CLIP

    func testCLIPMatchesPyTorchInEveryNaming() throws {
        for file in ["clip_hf.safetensors", "clip_hf_vision.safetensors", "clip_openai.pth", "clip_openai_jit.pt",
                     "clip_timm.safetensors"] {
            try Fixtures.assertParity(file, "clip_64", Self.clip)
        }
        XCTAssertEqual(try BackboneWeights.read(Fixtures.path("clip_openai.pth")).naming, "openai")
        XCTAssertEqual(try BackboneWeights.read(Fixtures.path("clip_hf_vision.safetensors")).naming, "huggingface")
    }

    func testCLIPFrozenBackwardMatchesAutograd() throws {
        try Fixtures.assertFrozenBackward("clip_openai.pth", "clip_64", Self.clip)
    }

    func testCLIPPositionGridResamplesBicubicallyOrBilinearly() throws {
        try Fixtures.assertParity("clip_hf.safetensors", "clip_80", Self.clip)
        try Fixtures.assertParity("clip_hf.safetensors", "clip_80_bilinear", Self.clip, interpolation: .bilinear)
        // The two differ, so each reference really tells them apart.
        let bicubic = try Fixtures.reference("clip_80").tensors["block_1"]!
        let bilinear = try Fixtures.reference("clip_80_bilinear").tensors["block_1"]!
        XCTAssertGreaterThan(relativeError(bicubic, bilinear), 1e-3)
    }

    // MARK: errors, names, random weights

    func testOneMisShapedTensorIsOneLine() throws {
        var weights = try BackboneWeights.read(Fixtures.path("clip_timm.safetensors"))
        weights.tensors["blocks.1.mlp.fc1.weight"] = Tensor(zeros: [100, 32])
        let model = VisionTransformer(architecture: Self.clip, imageSize: 64, patchSize: 16)
        assertCausalTuneError(["blocks.1.mlp.fc1.weight", "[100, 32]", "[128, 32]"]) { try model.load(weights) }
        // A file of another family is refused for the configured architecture.
        assertCausalTuneError(["eva02", "clip_vitb16"]) {
            _ = try BackboneWeights.read(Fixtures.path("eva02_fused.pth"), for: try BackboneArchitecture.named("clip_vitb16"))
        }
    }

    func testFamiliesAreRecognisedFromTheNames() throws {
        for (file, family) in [("s14.pth", BackboneArchitecture.Family.dinov2), ("s14_hf.safetensors", .dinov2),
                               ("s14_reg4_timm.safetensors", .dinov2), ("g14.pth", .dinov2),
                               ("eva02_fused.pth", .eva02), ("eva02_split_rein.pth", .eva02), ("eva02_fused_timm.safetensors", .eva02),
                               ("clip_hf.safetensors", .clip), ("clip_openai.pth", .clip), ("clip_timm.safetensors", .clip)] {
            XCTAssertEqual(try BackboneWeights.read(Fixtures.path(file)).family, family, file)
        }
    }

    func testReleasedArchitecturesHaveTheirShapes() throws {
        let l = try BackboneArchitecture.named("eva02_vitl14")
        XCTAssertEqual([l.channels, l.depth, l.heads, l.feedForward.hidden], [1024, 24, 16, 2730])
        XCTAssertEqual(l.feedForward, .swiglu(hidden: 2730, subNorm: true))
        XCTAssertEqual(try BackboneArchitecture.named("eva02_vits14").feedForward, .swiglu(hidden: 1024, subNorm: false))
        XCTAssertEqual(try BackboneArchitecture.named("eva02_vitt14").feedForward, .swiglu(hidden: 512, subNorm: false))
        let b = try BackboneArchitecture.named("clip_vitb16")
        XCTAssertEqual([b.channels, b.depth, b.heads, b.nativePatchSize], [768, 12, 12, 16])
        XCTAssertEqual(b.feedForward, .mlp(hidden: 3072, activation: .quickGELU))
        XCTAssertEqual(try BackboneArchitecture.named("clip_vitl14").nativePatchSize, 14)
        // timm's vit_base_patch16_clip_224 (num_classes=0) less its final norm.
        XCTAssertEqual(b.parameterCount(patchSize: 16, gridTokens: 14 * 14), 85_797_888)
    }

    func testRandomWeightsRunForEveryFamily() throws {
        for arch in ["eva02_vitt14", "clip_vitb16"] {
            let model = try BackboneOptions(arch: arch, weights: "random", imageSize: 32, patchSize: 16).makeBackbone()
            let input = Tensor(zeros: [1, 3, 32, 32])
            var rng = RandomGenerator(seed: 3)
            rng.fillNormal(input)
            let out = model.forward(input, forBackward: false)
            XCTAssertEqual(out.shape, [1, 5, model.channels])
            XCTAssertTrue(out.array.allSatisfy { $0.isFinite }, arch)
        }
    }
}
