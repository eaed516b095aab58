import Foundation
import Numerics
import Layers
import PEFT
import XCTest

/// Parity with an independent PyTorch implementation of reference §Causal-Tune layer
/// (`Fixtures/make_fixtures.py`): outputs and the gradients of the input, tokens (or the
/// low-rank factors), `f_t`, `f_d` and `s`, plus the dump arrays, within 1e-4 relative.
final class CausalTuneReferenceTests: XCTestCase {
    struct Case {
        let raw: [String: Any]
        var name: String { raw["name"] as! String }
        func int(_ k: String) -> Int { raw[k] as! Int }
        func floats(_ k: String) -> [Float] { (raw[k] as! [NSNumber]).map { $0.floatValue } }
        func dict(_ k: String) -> [String: [Float]] {
            (raw[k] as! [String: [NSNumber]]).mapValues { $0.map { $0.floatValue } }
        }
    }

    private func loadCases() throws -> [Case] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "causal_tune_reference", withExtension: "json",
                                                  subdirectory: "Fixtures"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return (json["cases"] as! [[String: Any]]).map { Case(raw: $0) }
    }

    /// `max |a − b| / max |b|`.
    private func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "sizes \(a.count) vs \(b.count)")
        var num: Float = 0, den: Float = 1e-12
        for (x, y) in zip(a, b) {
            num = Swift.max(num, abs(x - y))
            den = Swift.max(den, abs(y))
        }
        return num / den
    }

    private func options(_ c: Case) -> CausalTuneOptions {
        let transform = TransformKind(rawValue: c.raw["transform"] as! String)!
        let filter = FrequencyFilter(mode: FilterMode(rawValue: c.raw["mode"] as! String)!,
                                     shape: FilterShape(rawValue: c.raw["shape"] as! String)!,
                                     low: c.raw["low"] as! Double, high: c.raw["high"] as! Double)
        let rank = c.raw["rank"] as? Int
        if c.name == "rein" { return .rein(tokens: c.int("tokens"), loraRank: rank) }
        return CausalTuneOptions(tokens: c.int("tokens"), loraRank: rank, transform: transform,
                                 discardNoncausal: c.raw["discard"] as! Bool, filter: filter)
    }

    func testForwardAndGradientsMatchPyTorchReference() throws {
        let cases = try loadCases()
        XCTAssertEqual(Set(cases.map(\.name)),
                       ["dct_default", "rein", "low_rank", "fft", "haar", "dct_ideal_lowcut_discard"])
        for c in cases {
            let (b, ch, h, w, prefix) = (c.int("B"), c.int("C"), c.int("h"), c.int("w"), c.int("prefix"))
            let t = prefix + h * w
            let adapter = try CausalTuneAdapter(options: options(c), layers: c.int("layers"), channels: ch,
                                                patchSize: 14, seed: 1)
            let params = c.dict("params")
            let shapes = Dictionary(uniqueKeysWithValues: adapter.trainableParameters.map { ($0.name, $0.parameter.shape) })
            try adapter.loadParameters(from: c.name) { name in
                params[name].map { Tensor(shape: shapes[name]!, values: $0) }
            }
            adapter.zeroGrad()
            let x = Tensor(shape: [b, t, ch], values: c.floats("x"))
            let gout = Tensor(shape: [b, t, ch], values: c.floats("gout"))
            let out = Tensor(zeros: x.shape), dx = Tensor(zeros: x.shape)
            let layer = c.int("layer")
            adapter.forward(layer: layer, input: x, output: out, prefixTokens: prefix, grid: (h, w))
            adapter.backward(layer: layer, dOutput: gout, dInput: dx, prefixTokens: prefix, grid: (h, w))

            var report: [String] = []
            func expect(_ label: String, _ got: [Float], _ want: [Float]) {
                let e = relativeError(got, want)
                report.append("\(label) \(e)")
                XCTAssertLessThan(e, 1e-4, "\(c.name): \(label)")
            }
            expect("out", out.array, c.floats("out"))
            expect("dx", dx.array, c.floats("dx"))
            let grads = c.dict("grads")
            XCTAssertEqual(Set(grads.keys), Set(adapter.trainableParameters.map(\.name)), c.name)
            for p in adapter.trainableParameters { expect(p.name, p.parameter.grad!.array, grads[p.name] ?? []) }

            let feats = adapter.features(layer: layer, input: x, prefixTokens: prefix, grid: (h, w))
            expect("spectrum", feats.spectrum.array, c.floats("spectrum"))
            expect("causal", feats.causal.array, c.floats("causal"))
            expect("mask", feats.mask.array, c.floats("mask"))
            expect("band_energy", feats.bandEnergy.array, c.floats("band_energy"))
            XCTAssertEqual(feats.refined.shape, [b, ch, h, w])
            print("PEFT parity \(c.name): " + report.joined(separator: ", "))
        }
    }
}
