import Backbone
import Foundation
import HDF5
import ImageIO
import Training
import XCTest

/// `causal-tune features` (the binary built by `launch/test`): `--set` overrides and how a
/// non-square image reaches the square backbone input (`--fit crop|stretch`).
final class FeaturesCommandTests: XCTestCase {
    private var dir = ""

    /// An 84×28 image in three 28-pixel bands: red, green, blue.
    private static let bands: RGBImage = {
        var img = RGBImage(width: 84, height: 28)
        for y in 0..<28 { for x in 0..<84 { img[y, x, x / 28] = 200 } }
        return img
    }()

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ct-features-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try ImageIO.writePNG(Self.bands, to: dir + "/bands.png")
        let config = """
        model:
          backbone: {arch: dinov2_vitt14, weights: random, image_size: 28, patch_size: 14}
          peft: {method: causal_tune, tokens: 8}
          head: {type: linear, num_classes: 19}
        data:
          train: {dataset: folder, root: \(dir), split: train}
          val: []
        """
        try config.write(toFile: dir + "/tiny.yaml", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testCropKeepsTheCentredSquareAndStretchKeepsTheWholeImage() {
        let crop = FeatureDumpInput.prepare(Self.bands, fit: .crop)
        XCTAssertEqual(crop.width, 28); XCTAssertEqual(crop.height, 28)
        XCTAssertTrue(stride(from: 0, to: crop.pixels.count, by: 3).allSatisfy {
            crop.pixels[$0] == 0 && crop.pixels[$0 + 1] == 200 && crop.pixels[$0 + 2] == 0
        }, "only the middle (green) band")
        XCTAssertEqual(FeatureDumpInput.prepare(Self.bands, fit: .stretch), Self.bands)
        let square = RGBImage(width: 5, height: 5, fill: 9)
        XCTAssertEqual(FeatureDumpInput.prepare(square, fit: .crop), square)
    }

    private func run(_ args: [String]) throws -> (Int32, String) {
        try CommandLineRunner.requireBinary()
        return try CommandLineRunner.run(args)
    }

    /// `/image` de-normalised with the statistics the dump records: the mean R, G, B over the picture.
    private func meanColour(_ dump: String) throws -> (shape: [Int], rgb: [Double]) {
        let file = try HDF5File.open(dump)
        let t = try file.readTensor("image")
        let n = t.shape[2] * t.shape[3]
        let stored = try FeatureDumpFormat.normalization(of: file)
        XCTAssertEqual(stored, .imagenet, "model.backbone.normalize defaults to imagenet")
        let mean = stored.mean, std = stored.std
        let rgb = (0..<3).map { c in (0..<n).map { Double(t.data[c * n + $0] * std[c] + mean[c]) }.reduce(0, +) / Double(n) }
        return (t.shape, rgb)
    }

    func testSetOverridesTheConfigAndFitChoosesTheInput() throws {
        let (s1, o1) = try run(["features", "--config", dir + "/tiny.yaml", "--set", "model.backbone.image_size=42",
                                "--set", "model.peft.tokens=4", "--out", dir + "/crop.h5", "--layers", "1", dir + "/bands.png"])
        XCTAssertEqual(s1, 0, o1)
        let crop = try meanColour(dir + "/crop.h5")
        XCTAssertEqual(crop.shape, [1, 3, 42, 42], "--set model.backbone.image_size=42")
        XCTAssertEqual(crop.rgb[0], 0, accuracy: 0.01); XCTAssertEqual(crop.rgb[1], 200, accuracy: 0.01)
        XCTAssertEqual(crop.rgb[2], 0, accuracy: 0.01)
        let f = try HDF5File.open(dir + "/crop.h5")
        XCTAssertEqual(try f.readTensor("layer_01/spatial").shape, [1, 192, 3, 3])
        let (s2, o2) = try run(["features", "--config", dir + "/tiny.yaml", "--fit", "stretch",
                                "--out", dir + "/stretch.h5", "--layers", "1", dir + "/bands.png"])
        XCTAssertEqual(s2, 0, o2)
        let stretch = try meanColour(dir + "/stretch.h5")
        XCTAssertEqual(stretch.shape, [1, 3, 28, 28])
        XCTAssertEqual(stretch.rgb[0], 200.0 / 3, accuracy: 4); XCTAssertEqual(stretch.rgb[2], 200.0 / 3, accuracy: 4)
        let (s3, o3) = try run(["features", "--config", dir + "/tiny.yaml", "--fit", "pad", "--out", dir + "/x.h5", dir + "/bands.png"])
        XCTAssertNotEqual(s3, 0)
        XCTAssertEqual(o3, "--fit: 'pad' is not crop or stretch\n")
        let (s4, o4) = try run(["features", "--config", dir + "/tiny.yaml", "--set", "model.backbone.image_sise=42",
                                "--out", dir + "/x.h5", dir + "/bands.png"])
        XCTAssertNotEqual(s4, 0)
        XCTAssertEqual(o4.split(separator: "\n").count, 1, o4)
        XCTAssertTrue(o4.contains("image_sise"), o4)
    }
}
