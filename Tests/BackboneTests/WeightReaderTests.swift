import Backbone
import Foundation
import Numerics
import XCTest

/// The weight readers: every format and naming of the same model reads to the same float32
/// tensors under official names, and broken files fail with one clear line.
final class WeightReaderTests: XCTestCase {
    private func assertSameTensors(_ a: BackboneWeights, _ b: BackboneWeights, ignoring: Set<String> = [],
                                   file: StaticString = #filePath, line: UInt = #line) {
        let keysA = Set(a.tensors.keys).subtracting(ignoring), keysB = Set(b.tensors.keys).subtracting(ignoring)
        XCTAssertEqual(keysA, keysB, "\(a.path) vs \(b.path)", file: file, line: line)
        for k in keysA.intersection(keysB) {
            let x = a.tensors[k]!, y = b.tensors[k]!
            XCTAssertEqual(x.shape, y.shape, k, file: file, line: line)
            if x.shape == y.shape {
                XCTAssertEqual(x.array, y.array, "\(k): \(a.path) vs \(b.path)", file: file, line: line)
            }
        }
    }

    func testFormatIsDetectedFromContentNotExtension() throws {
        XCTAssertEqual(try WeightFile.detectFormat(Fixtures.path("s14.pth")), .pytorch)
        XCTAssertEqual(try WeightFile.detectFormat(Fixtures.path("s14.safetensors")), .safetensors)
        XCTAssertEqual(try WeightFile.detectFormat(Fixtures.path("s14.h5")), .hdf5)
        // A safetensors file under a .pth name is still read as safetensors.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("s14.safetensors"))))
        let renamed = Fixtures.temporaryFile(bytes, name: "renamed.pth")
        XCTAssertEqual(try WeightFile.detectFormat(renamed), .safetensors)
        XCTAssertEqual(try BackboneWeights.read(renamed).tensors.count, try BackboneWeights.read(Fixtures.path("s14.safetensors")).tensors.count)
    }

    func testOfficialPthSafetensorsHuggingFaceAndHDF5HoldTheSameWeights() throws {
        let pth = try BackboneWeights.read(Fixtures.path("s14.pth"))
        XCTAssertEqual(pth.naming, "official")
        XCTAssertEqual(pth.dtypes["blocks.0.attn.qkv.weight"], "float32")
        // s14.pth stores blocks.0.attn.proj.weight as a transposed view and blocks.1.norm1.bias
        // with a storage offset; the safetensors copies are contiguous.
        let f16 = try BackboneWeights.read(Fixtures.path("s14.safetensors"))
        XCTAssertEqual(f16.dtypes["blocks.0.attn.qkv.weight"], "float16")
        assertSameTensors(pth, f16)
        let hf = try BackboneWeights.read(Fixtures.path("s14_hf.safetensors"))
        XCTAssertEqual(hf.naming, "huggingface")
        assertSameTensors(pth, hf)
        let h5 = try BackboneWeights.read(Fixtures.path("s14.h5"))
        assertSameTensors(pth, h5)
        XCTAssertNoThrow(try pth.validate(for: Fixtures.s14))
        XCTAssertEqual(try pth.inferArchitecture(), BackboneArchitecture(name: "custom(C=16,L=2,R=0)", channels: 16, depth: 2, heads: 1,
                                                                       feedForward: .mlp(hidden: 64), registers: 0))
    }

    func testNestedBFloat16CheckpointMatchesHuggingFaceAndTimmNames() throws {
        let pth = try BackboneWeights.read(Fixtures.path("s14_reg4.pth"))   // {"teacher": {"backbone.<name>": bf16}}
        XCTAssertEqual(pth.dtypes["cls_token"], "bfloat16")
        XCTAssertNoThrow(try pth.validate(for: Fixtures.s14reg4))
        let hf = try BackboneWeights.read(Fixtures.path("s14_reg4_hf.safetensors"))
        assertSameTensors(pth, hf)
        // timm folds the cls position into cls_token and drops it from pos_embed.
        let timm = try BackboneWeights.read(Fixtures.path("s14_reg4_timm.safetensors"))
        XCTAssertEqual(timm.naming, "timm")
        assertSameTensors(pth, timm, ignoring: ["cls_token", "pos_embed", "mask_token"])
        let c = 16
        let pos = pth.tensors["pos_embed"]!, timmPos = timm.tensors["pos_embed"]!
        XCTAssertEqual(timmPos.shape, pos.shape)
        XCTAssertEqual(Array(timmPos.array[c...]), Array(pos.array[c...]))
        XCTAssertEqual(Array(timmPos.array[..<c]), [Float](repeating: 0, count: c))
        for j in 0..<c {
            let folded = pth.tensors["cls_token"]!.data[j] + pos.data[j]
            XCTAssertEqual(timm.tensors["cls_token"]!.data[j], folded, accuracy: abs(folded) * 1e-3)
        }
    }

    func testSwiGLUWeightsReadUnderOfficialNames() throws {
        let pth = try BackboneWeights.read(Fixtures.path("g14.pth"))
        let hf = try BackboneWeights.read(Fixtures.path("g14_hf.safetensors"))
        assertSameTensors(pth, hf)
        XCTAssertEqual(pth.tensors["blocks.0.mlp.w12.weight"]?.shape, [96, 16])
        XCTAssertEqual(pth.tensors["blocks.0.mlp.w3.weight"]?.shape, [16, 48])
        XCTAssertEqual(try pth.inferArchitecture().feedForward, .swiglu(hidden: 48))
        XCTAssertNoThrow(try pth.validate(for: Fixtures.g14))
    }

    func testOfficialArchitecturesHaveTheSpecShapes() throws {
        let l = try BackboneArchitecture.named("dinov2_vitl14")
        XCTAssertEqual([l.channels, l.depth, l.heads, l.feedForward.hidden, l.registers], [1024, 24, 16, 4096, 0])
        let g = try BackboneArchitecture.named("dinov2_vitg14_reg4")
        XCTAssertEqual([g.channels, g.depth, g.heads, g.registers], [1536, 40, 24, 4])
        XCTAssertEqual(g.feedForward, .swiglu(hidden: 4096))
        XCTAssertEqual(try BackboneArchitecture.named("dinov2_vits14").parameterCount(patchSize: 14, gridTokens: 37 * 37), 22_055_424)  // timm vit_small_patch14_dinov2 less its final norm
        assertCausalTuneError(["model.backbone.arch", "dinov2_vitx14"]) { _ = try BackboneArchitecture.named("dinov2_vitx14") }
    }

    func testTrainingPrefixesAndChunkedBlocksAreUnwrapped() throws {
        let official = try WeightFile.read(Fixtures.path("s14.pth"))
        // As a DDP-wrapped training run with block_chunks = 2 would save it.
        var names: [String] = [], tensors: [String: Tensor] = [:]
        for name in official.names {
            var renamed = name
            if name.hasPrefix("blocks.") {
                let index = Int(name.split(separator: ".")[1])!
                renamed = "blocks.\(index / 1).\(index)." + name.split(separator: ".").dropFirst(2).joined(separator: ".")
            }
            renamed = "module.backbone." + renamed
            names.append(renamed)
            tensors[renamed] = official.tensors[name]
        }
        names.append("module.dino_head.mlp.0.weight")
        tensors["module.dino_head.mlp.0.weight"] = Tensor(zeros: [4, 4])
        let wrapped = WeightFile(path: "wrapped", format: .pytorch, names: names, tensors: tensors,
                                 dtypes: Dictionary(uniqueKeysWithValues: names.map { ($0, "float32") }))
        let weights = try BackboneWeights.canonical(wrapped)
        XCTAssertNoThrow(try weights.validate(for: Fixtures.s14))
        XCTAssertEqual(weights.tensors["blocks.1.attn.qkv.weight"]?.array, official.tensors["blocks.1.attn.qkv.weight"]?.array)
    }

    // MARK: bad files

    func testTruncatedHDF5GivesOneLineNamingTheFile() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("s14.h5"))))
        let path = Fixtures.temporaryFile(Array(bytes[..<4096]), name: "truncated.h5")
        assertCausalTuneError([path]) { _ = try BackboneWeights.read(path) }
    }

    func testTruncatedZipGivesOneLineNamingTheFile() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("s14.pth"))))
        let path = Fixtures.temporaryFile(Array(bytes[..<(bytes.count / 2)]), name: "truncated.pth")
        assertCausalTuneError([path]) { _ = try BackboneWeights.read(path) }
    }

    func testTruncatedSafetensorsGivesOneLineNamingTheFile() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("s14_hf.safetensors"))))
        let path = Fixtures.temporaryFile(Array(bytes[..<(bytes.count - 100)]), name: "truncated.safetensors")
        assertCausalTuneError([path, "truncated"]) { _ = try BackboneWeights.read(path) }
    }

    func testRandomBytesAreNotACheckpoint() {
        var rng = RandomGenerator(seed: 3)
        let path = Fixtures.temporaryFile((0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, name: "random.bin")
        assertCausalTuneError([path, "not a PyTorch checkpoint, safetensors or HDF5 file"]) { _ = try BackboneWeights.read(path) }
        assertCausalTuneError(["/nonexistent/weights.pth"]) { _ = try BackboneWeights.read("/nonexistent/weights.pth") }
    }

    func testWrongShapeNamesKeyAndBothShapes() throws {
        let weights = try BackboneWeights.read(Fixtures.path("s14.pth"))
        let wide = BackboneArchitecture(name: "wide", channels: 32, depth: 2, heads: 2, feedForward: .mlp(hidden: 128), registers: 0)
        assertCausalTuneError(["'cls_token'", "[1, 1, 16]", "[1, 1, 32]", "s14.pth"]) { try weights.validate(for: wide) }
        let wideMLP = BackboneArchitecture(name: "wide_mlp", channels: 16, depth: 2, heads: 2, feedForward: .mlp(hidden: 96), registers: 0)
        assertCausalTuneError(["'blocks.0.mlp.fc1.weight'", "[64, 16]", "[96, 16]"]) { try weights.validate(for: wideMLP) }
    }

    func testMissingAndUnexpectedTensorsAreNamed() throws {
        let weights = try BackboneWeights.read(Fixtures.path("s14.pth"))
        assertCausalTuneError(["missing tensor 'register_tokens'", "[1, 4, 16]"]) { try weights.validate(for: Fixtures.s14reg4) }
        var extra = weights
        extra.tensors["blocks.0.attn.extra"] = Tensor(zeros: [3, 2])
        assertCausalTuneError(["unexpected tensor 'blocks.0.attn.extra'", "[3, 2]"]) { try extra.validate(for: Fixtures.s14) }
        let deeper = BackboneArchitecture(name: "deeper", channels: 16, depth: 3, heads: 2, feedForward: .mlp(hidden: 64), registers: 0)
        assertCausalTuneError(["missing tensor 'blocks.2.norm1.weight'"]) { try weights.validate(for: deeper) }
    }
}
