import Backbone
import Foundation
import HDF5
import ImageIO
import Numerics
import PEFT
import Training
import XCTest

/// The feature dump with Causal-Tune against an independent PyTorch implementation
/// (`Tests/PEFTTests/Fixtures/make_features_fixtures.py`): the tiny random DINOv2 of the
/// Backbone fixtures with the PEFT parameters of a reference §Files checkpoint, every dataset of every
/// layer within 1e-4 relative — for the default Causal-Tune configuration and for Rein.
final class CausalTuneFeatureDumpTests: XCTestCase {
    private let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    private func peftFixture(_ name: String) -> String { tests.appendingPathComponent("PEFTTests/Fixtures/\(name)").path }
    private func backboneFixture(_ name: String) -> String { tests.appendingPathComponent("BackboneTests/Fixtures/\(name)").path }

    /// `max |a − b| / max |b|`.
    private func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        var num = 0.0, den = 1e-30
        for i in 0..<b.count {
            num = Swift.max(num, Double(abs(a.data[i] - b.data[i])))
            den = Swift.max(den, Double(abs(b.data[i])))
        }
        return num / den
    }

    func testDumpWithCheckpointMatchesPyTorchForCausalTuneAndRein() throws {
        let arch = BackboneArchitecture(name: "tiny_s14", channels: 16, depth: 2, heads: 2, feedForward: .mlp(hidden: 64), registers: 0)
        let images = [backboneFixture("img0.png"), backboneFixture("img1.png")]
        for (variant, options) in [("dct", CausalTuneOptions(tokens: 10)), ("rein", CausalTuneOptions.rein(tokens: 10))] {
            let model = VisionTransformer(architecture: arch, imageSize: 56, patchSize: 14)
            try model.load(BackboneWeights.read(backboneFixture("s14.safetensors")))
            let adapter = try CausalTuneAdapter(options: options, layers: 2, channels: 16, patchSize: 14, seed: 0)
            try adapter.loadCheckpoint(peftFixture("features_\(variant)_checkpoint.h5"))
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("ct-features-\(getpid())-\(variant).h5").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let hook = CausalTuneFeatureDump.hook(adapter: adapter, model: model, layers: [0, 1])
            try FeatureExtraction.dump(model: model, images: images, layers: [0, 1], config: "test", to: out,
                                       load: { p in let im = try ImageIO.readRGB(p); return (im.pixels, im.width, im.height) },
                                       hook: hook)
            let got = try HDF5File.open(out), want = try HDF5File.open(peftFixture("features_\(variant)_expected.h5"))
            defer { try? got.close(); try? want.close() }
            // Rein runs with the identity transform whatever model.peft.transform says.
            XCTAssertEqual(try got.stringAttribute("transform"), variant == "rein" ? "identity" : "dct")
            var names = ["mask"]
            for l in 0..<2 {
                for d in ["spatial", "spectrum", "causal", "refined", "band_energy"] { names.append(String(format: "layer_%02d/", l) + d) }
            }
            var report: [String] = []
            for name in names {
                let g = try got.readTensor(name), w = try want.readTensor(name)
                XCTAssertEqual(g.shape, w.shape, "\(variant) \(name)")
                guard g.shape == w.shape else { continue }
                let e = relativeError(g, w)
                report.append(String(format: "%@ %.1e", name, e))
                XCTAssertLessThan(e, 1e-4, "\(variant) \(name)")
            }
            print("features parity \(variant): " + report.joined(separator: ", "))
        }
    }
}
