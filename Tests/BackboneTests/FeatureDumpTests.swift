import Backbone
import Foundation
import HDF5
import ImageIO
import Numerics
import XCTest

/// `causal-tune features` through its library entry point: PNG inputs → normalised input →
/// the bare backbone → the reference §Files dump, compared with PyTorch.
final class FeatureDumpTests: XCTestCase {
    private func loadPNG(_ path: String) throws -> FeatureExtraction.LoadedImage {
        let image = try ImageIO.readRGB(path)
        return (image.pixels, image.width, image.height)
    }

    func testDumpOfPNGInputsMatchesPyTorchBlockOutputs() throws {
        let ref = try Fixtures.reference("s14_56")   // its input is img0.png, img1.png normalised
        let tiny = VisionTransformer(architecture: Fixtures.s14, imageSize: 56)
        try tiny.load(BackboneWeights.read(Fixtures.path("s14.pth")))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("backbone-dump-\(ProcessInfo.processInfo.processIdentifier).h5").path
        let images = [Fixtures.path("img0.png"), Fixtures.path("img1.png")]
        try FeatureExtraction.dump(model: tiny, images: images, layers: [0, 1], config: "model: {peft: {method: none}}\n",
                                   to: out, load: loadPNG)

        let file = try HDF5File.open(out)
        defer { try? file.close() }
        XCTAssertEqual(try file.stringAttribute("format"), "causal-tune-features")
        XCTAssertEqual(try file.int64Attribute("version"), 1)
        XCTAssertEqual(try file.stringArrayAttribute("images"), images)
        XCTAssertEqual(try file.int64ArrayAttribute("grid"), [4, 4])
        XCTAssertEqual(try file.stringAttribute("config"), "model: {peft: {method: none}}\n")
        XCTAssertEqual(try file.float64ArrayAttribute("image_mean"), [123.675, 116.28, 103.53].map { Double(Float($0)) })
        XCTAssertEqual(try file.float64ArrayAttribute("image_std"), [58.395, 57.12, 57.375].map { Double(Float($0)) })
        XCTAssertEqual(try FeatureDumpFormat.normalization(of: file), .imagenet)
        XCTAssertFalse(file.hasAttribute("transform"), "no PEFT spectra, no transform")

        let image = try file.readTensor("image")
        XCTAssertEqual(image.shape, [2, 3, 56, 56])
        XCTAssertLessThan(relativeError(image, ref.tensors["input"]!), 1e-6)
        for layer in 0..<2 {
            let spatial = try file.readTensor(FeatureDumpFormat.layerPath(layer, .spatial))
            XCTAssertEqual(spatial.shape, [2, 16, 4, 4])
            // Reference: patch tokens (after cls) of block `layer`, channels first.
            let tokens = ref.tensors["block_\(layer)"]!
            let expected = Tensor(zeros: [2, 16, 4, 4])
            for b in 0..<2 { for c in 0..<16 { for n in 0..<16 { expected[b, c, n / 4, n % 4] = tokens[b, 1 + n, c] } } }
            let err = relativeError(spatial, expected)
            XCTAssertLessThan(err, 1e-4, "layer_\(layer)/spatial relative error \(err)")
        }
        XCTAssertFalse(file.exists("layer_02"))
        try? FileManager.default.removeItem(atPath: out)
    }

    func testWriterRecordsTheNormalisationAndTransformAReaderFindsAgain() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("dump-attrs-\(ProcessInfo.processInfo.processIdentifier).h5").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try HDF5File.writeAtomically(to: out) { file in
            let writer = try FeatureDumpWriter(file: file, config: "", images: ["a.png"], grid: (2, 3), normalization: .clip)
            try writer.setTransform("haar")
        }
        let file = try HDF5File.open(out)
        defer { try? file.close() }
        XCTAssertEqual(try FeatureDumpFormat.normalization(of: file), .clip)
        XCTAssertEqual(try FeatureDumpFormat.transform(of: file), "haar")
        XCTAssertEqual(FeatureDumpFormat.layerPath(7, .bandEnergy), "layer_07/band_energy")
        XCTAssertEqual(FeatureDumpFormat.layerIndex(ofGroup: "layer_12"), 12)
        XCTAssertNil(FeatureDumpFormat.layerIndex(ofGroup: "layers"))
    }

    func testSettingsBuildTheNamedArchitectureOrNameTheBadKey() throws {
        let built = try BackboneOptions(arch: "dinov2_vits14_reg4", weights: "random", imageSize: 64, patchSize: 16).makeBackbone()
        let model = try XCTUnwrap(built as? VisionTransformer, "DINOv2 is built as a VisionTransformer")
        XCTAssertEqual(model.tokenCount, 1 + 4 + 16)
        XCTAssertEqual(model.patchEmbed.weight.shape, [384, 3, 16, 16])
        assertCausalTuneError(["model.backbone.arch", "vit_huge"]) {
            _ = try BackboneOptions(arch: "vit_huge", weights: "random", imageSize: 64).makeBackbone()
        }
        assertCausalTuneError(["model.backbone.image_size"]) {
            _ = try BackboneOptions(arch: "dinov2_vits14", weights: "random", imageSize: 8).makeBackbone()
        }
        // The fixture is a C = 16 model: loading it as ViT-S names the first mis-shaped tensor.
        assertCausalTuneError(["s14.pth", "'cls_token'", "[1, 1, 16]", "[1, 1, 384]"]) {
            _ = try BackboneOptions(arch: "dinov2_vits14", weights: Fixtures.path("s14.pth"), imageSize: 56).makeBackbone()
        }
    }

    func testLayerSelectionIsCheckedAndNetworkInputIsNormalised() throws {
        XCTAssertEqual(try FeatureExtraction.parseLayers("11, 0,11", depth: 12), [0, 11])
        XCTAssertEqual(try FeatureExtraction.parseLayers(nil, depth: 3), [0, 1, 2])
        assertCausalTuneError(["--layers", "12"]) { _ = try FeatureExtraction.parseLayers("0,12", depth: 12) }
        // A flat grey image becomes (value − mean) / std per channel, at any input size.
        let t = Tensor(zeros: [3, 14, 14])
        NetworkInput.write(pixels: [UInt8](repeating: 100, count: 20 * 10 * 3), width: 20, height: 10, size: 14, into: t)
        for c in 0..<3 {
            let imagenet = ImageNormalization.imagenet
            XCTAssertEqual(t[c, 7, 3], (100 - imagenet.mean[c]) / imagenet.std[c], accuracy: 1e-5)
        }
    }
}
