import Core
import Foundation
import Layers
import Numerics
import PEFT
import XCTest

/// Construction, parameter names and layouts, initialisation, options and the dump arrays.
final class CausalTuneAdapterTests: XCTestCase {
    func testParametersHaveSpecNamesAndPyTorchShapes() throws {
        let a = try CausalTuneAdapter(options: CausalTuneOptions(), layers: 12, channels: 24, patchSize: 14, seed: 0)
        XCTAssertEqual(a.trainableParameters.map(\.name), ["peft/tokens", "peft/f_t/weight", "peft/f_t/bias",
                                                  "peft/f_d/weight", "peft/f_d/bias", "peft/scale"])
        XCTAssertEqual(a.trainableParameters.map(\.parameter.shape), [[12, 100, 24], [24, 24], [24], [24, 24], [24], [1]])
        XCTAssertTrue(a.trainableParameters.allSatisfy { $0.parameter.requiresGrad })
        XCTAssertEqual(a.namedParameters.first?.name, "tokens")
        let lr = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 10, loraRank: 4), layers: 3, channels: 8,
                                       patchSize: 16, seed: 0)
        XCTAssertEqual(lr.trainableParameters.map(\.name), ["peft/tokens_a", "peft/tokens_b", "peft/f_t/weight", "peft/f_t/bias",
                                                   "peft/f_d/weight", "peft/f_d/bias", "peft/scale"])
        XCTAssertEqual(lr.trainableParameters[0].parameter.shape, [3, 10, 4])
        XCTAssertEqual(lr.trainableParameters[1].parameter.shape, [3, 4, 8])
    }

    func testInitialisationFollowsReinBoundsAndIsDeterministicInTheSeed() throws {
        let (c, p) = (64, 14)
        let a = try CausalTuneAdapter(options: CausalTuneOptions(scaleInit: 1e-3), layers: 2, channels: c, patchSize: p, seed: 3)
        let b = try CausalTuneAdapter(options: CausalTuneOptions(scaleInit: 1e-3), layers: 2, channels: c, patchSize: p, seed: 3)
        let d = try CausalTuneAdapter(options: CausalTuneOptions(scaleInit: 1e-3), layers: 2, channels: c, patchSize: p, seed: 4)
        let v = (6 / Float(3 * p * p + c)).squareRoot()
        let tokens = a.tokens!.value.array
        XCTAssertLessThanOrEqual(tokens.map(abs).max()!, v)
        XCTAssertGreaterThan(tokens.map(abs).max()!, 0.9 * v)
        for name in ["peft/f_t/weight", "peft/f_t/bias", "peft/f_d/weight", "peft/f_d/bias"] {
            let vals = a.trainableParameters.first { $0.name == name }!.parameter.value.array
            XCTAssertLessThanOrEqual(vals.map(abs).max()!, 1 / Float(c).squareRoot(), name)
            XCTAssertGreaterThan(vals.map(abs).max()!, 0.8 / Float(c).squareRoot(), name)
        }
        XCTAssertEqual(a.scale.value.array, [1e-3])
        for (pa, pb) in zip(a.trainableParameters, b.trainableParameters) { XCTAssertEqual(pa.parameter.value.array, pb.parameter.value.array, pa.name) }
        XCTAssertNotEqual(a.tokens!.value.array, d.tokens!.value.array)
    }

    func testClsAndRegisterTokensPassThroughUnchanged() throws {
        let a = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 8, scaleInit: 0.5), layers: 1, channels: 4, patchSize: 14, seed: 1)
        var rng = RandomGenerator(seed: 2)
        let x = Tensor(zeros: [2, 5 + 12, 4])
        rng.fillNormal(x)
        let out = Tensor(zeros: x.shape)
        a.forward(layer: 0, input: x, output: out, prefixTokens: 5, grid: (3, 4))
        for b in 0..<2 {
            for k in 0..<(5 * 4) { XCTAssertEqual(out.data[b * 17 * 4 + k], x.data[b * 17 * 4 + k]) }
        }
        XCTAssertNotEqual(out.array, x.array)
    }

    func testZeroScaleLeavesFeaturesUnchangedAndDiscardRemovesNonCausalPart() throws {
        var rng = RandomGenerator(seed: 8)
        let x = Tensor(zeros: [1, 1 + 24, 5])
        rng.fillNormal(x)
        let keep = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 4, scaleInit: 0), layers: 1, channels: 5, patchSize: 14, seed: 1)
        let out = Tensor(zeros: x.shape)
        keep.forward(layer: 0, input: x, output: out, prefixTokens: 1, grid: (4, 6))
        XCTAssertEqual(out.array, x.array)
        // With discard and s = 0 the output is T⁻¹(M ⊙ T(X)); its spectrum is the causal spectrum.
        let drop = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 4, scaleInit: 0, discardNoncausal: true),
                                         layers: 1, channels: 5, patchSize: 14, seed: 1)
        drop.forward(layer: 0, input: x, output: out, prefixTokens: 1, grid: (4, 6))
        let feats = drop.features(layer: 0, input: x, prefixTokens: 1, grid: (4, 6))
        let refinedTokens = Tensor(zeros: [1, 24, 5])
        let spec = Tensor(zeros: [1, 24, 5])
        for p in 0..<24 { for ch in 0..<5 { refinedTokens.data[p * 5 + ch] = out.data[(1 + p) * 5 + ch] } }
        drop.spectralTransform(grid: (4, 6)).forward(refinedTokens, into: spec, channels: 5)
        for p in 0..<24 { for ch in 0..<5 {
            XCTAssertEqual(spec.data[p * 5 + ch], feats.causal.data[ch * 24 + p], accuracy: 1e-5)
        } }
    }

    func testFeaturesAreChannelFirstAndBandEnergiesSumToOne() throws {
        let a = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 4), layers: 1, channels: 3, patchSize: 14, seed: 1)
        var rng = RandomGenerator(seed: 9)
        let x = Tensor(zeros: [2, 1 + 20, 3])
        rng.fillNormal(x)
        let f = a.features(layer: 0, input: x, prefixTokens: 1, grid: (4, 5))
        XCTAssertEqual(f.spatial.shape, [2, 3, 4, 5])
        XCTAssertEqual(f.spectrum.shape, [2, 3, 4, 5])
        XCTAssertEqual(f.causal.shape, [2, 3, 4, 5])
        XCTAssertEqual(f.refined.shape, [2, 3, 4, 5])
        XCTAssertEqual(f.bandEnergy.shape, [2, 3])
        XCTAssertEqual(f.mask.shape, [4, 5])
        XCTAssertEqual(f.spatial[1, 2, 3, 4], x[1, 1 + 3 * 5 + 4, 2])
        for b in 0..<2 {
            XCTAssertEqual(f.bandEnergy[b, 0] + f.bandEnergy[b, 1] + f.bandEnergy[b, 2], 1, accuracy: 1e-5)
            // causal = M ⊙ spectrum
            for ch in 0..<3 { for u in 0..<4 { for v in 0..<5 {
                XCTAssertEqual(f.causal[b, ch, u, v], f.mask[u, v] * f.spectrum[b, ch, u, v], accuracy: 1e-6)
            } } }
        }
        // No filter: everything is "causal".
        let rein = try CausalTuneAdapter(options: .rein(tokens: 4), layers: 1, channels: 3, patchSize: 14, seed: 1)
        let fr = rein.features(layer: 0, input: x, prefixTokens: 1, grid: (4, 5))
        XCTAssertEqual(fr.bandEnergy.array, [0, 1, 0, 0, 1, 0])
        XCTAssertEqual(fr.spectrum.array, fr.spatial.array)
    }

    func testMethodNoneBuildsNoAdapterAndBadOptionsAreClearErrors() throws {
        XCTAssertNil(try PEFTRegistry.make(options: CausalTuneOptions(method: .none), layers: 2, channels: 4, patchSize: 14, seed: 0))
        XCTAssertNotNil(try PEFTRegistry.make(options: .rein(), layers: 2, channels: 4, patchSize: 14, seed: 0))
        func message(_ o: CausalTuneOptions) -> String? {
            do { try o.validate(); return nil } catch let e as CausalTuneError { return e.message } catch { return "\(error)" }
        }
        XCTAssertTrue(message(CausalTuneOptions(tokens: 0))?.contains("model.peft.tokens") ?? false)
        XCTAssertTrue(message(CausalTuneOptions(loraRank: 0))?.contains("model.peft.lora_rank") ?? false)
        XCTAssertTrue(message(CausalTuneOptions(filter: FrequencyFilter(low: 0)))?.contains("model.peft.filter.low") ?? false)
        XCTAssertTrue(message(CausalTuneOptions(filter: FrequencyFilter(high: -1)))?.contains("model.peft.filter.high") ?? false)
        XCTAssertTrue(message(CausalTuneOptions(transform: .identity))?.contains("model.peft.filter.mode") ?? false)
        XCTAssertNil(message(.rein()))
        XCTAssertEqual(CausalTuneOptions.rein().effectiveTransform, .identity)
        XCTAssertEqual(CausalTuneOptions(method: .rein, transform: .dct).effectiveFilter.mode, .none)
    }

    func testLoadingParametersRejectsMissingAndMisshapenTensors() throws {
        let a = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 3), layers: 1, channels: 2, patchSize: 14, seed: 0)
        XCTAssertThrowsError(try a.loadParameters(from: "ckpt.h5") { _ in nil }) { e in
            XCTAssertTrue("\(e)".contains("ckpt.h5") && "\(e)".contains("peft/tokens"))
        }
        XCTAssertThrowsError(try a.loadParameters(from: "ckpt.h5") { _ in Tensor(zeros: [7]) }) { e in
            XCTAssertTrue("\(e)".contains("shape"))
        }
        let values = Dictionary(uniqueKeysWithValues: a.trainableParameters.map { ($0.name, Tensor(shape: $0.parameter.shape, repeating: 0.25)) })
        try a.loadParameters(from: "ckpt.h5") { values[$0] }
        XCTAssertEqual(a.scale.value.array, [0.25])
        XCTAssertEqual(a.tokens!.value.array, [Float](repeating: 0.25, count: 6))
    }
}

/// The all-layers token view used by the head's token → query link.
final class CausalTuneTokenLinkTests: XCTestCase {
    func testAllTokensAndTheirGradientMatchLowRankProducts() throws {
        let a = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 3, loraRank: 2), layers: 2, channels: 4, patchSize: 14, seed: 5)
        let all = Tensor(zeros: [2, 3, 4])
        a.allTokens(into: all)
        let A = a.tokensA!.value, B = a.tokensB!.value
        for l in 0..<2 { for i in 0..<3 { for c in 0..<4 {
            let want = (0..<2).reduce(Float(0)) { $0 + A[l, i, $1] * B[l, $1, c] }
            XCTAssertEqual(all[l, i, c], want, accuracy: 1e-6)
        } } }
        // L = Σ T ⊙ G  ⇒  dA = G Bᵀ, dB = Aᵀ G.
        var rng = RandomGenerator(seed: 1)
        let g = Tensor(zeros: [2, 3, 4])
        rng.fillNormal(g)
        a.zeroGrad()
        a.accumulateAllTokensGradient(g)
        let dA = a.tokensA!.grad!, dB = a.tokensB!.grad!
        for l in 0..<2 {
            for i in 0..<3 { for r in 0..<2 {
                let want = (0..<4).reduce(Float(0)) { $0 + g[l, i, $1] * B[l, r, $1] }
                XCTAssertEqual(dA[l, i, r], want, accuracy: 1e-5)
            } }
            for r in 0..<2 { for c in 0..<4 {
                let want = (0..<3).reduce(Float(0)) { $0 + A[l, $1, r] * g[l, $1, c] }
                XCTAssertEqual(dB[l, r, c], want, accuracy: 1e-5)
            } }
        }
        let full = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 3), layers: 2, channels: 4, patchSize: 14, seed: 5)
        full.allTokens(into: all)
        XCTAssertEqual(all.array, full.tokens!.value.array)
        full.zeroGrad()
        full.accumulateAllTokensGradient(g)
        XCTAssertEqual(full.tokens!.grad!.array, g.array)
    }
}

/// Recording the dump arrays during an ordinary forward (the `features` command's path).
final class CausalTuneRecordingTests: XCTestCase {
    func testRecordedFeaturesEqualRecomputedOnesAndOnlyForSelectedLayers() throws {
        let a = try CausalTuneAdapter(options: CausalTuneOptions(tokens: 4, scaleInit: 0.3), layers: 3, channels: 3, patchSize: 14, seed: 1)
        var rng = RandomGenerator(seed: 4)
        let x = Tensor(zeros: [1, 1 + 20, 3])
        rng.fillNormal(x)
        let out = Tensor(zeros: x.shape)
        a.recordFeatures = [1]
        a.forward(layer: 0, input: x, output: out, prefixTokens: 1, grid: (4, 5))
        a.forward(layer: 1, input: x, output: out, prefixTokens: 1, grid: (4, 5))
        XCTAssertNil(a.recordedFeatures[0])
        let rec = try XCTUnwrap(a.recordedFeatures[1])
        a.recordFeatures = []
        XCTAssertTrue(a.recordedFeatures.isEmpty)
        let f = a.features(layer: 1, input: x, prefixTokens: 1, grid: (4, 5))
        XCTAssertEqual(rec.spectrum.array, f.spectrum.array)
        XCTAssertEqual(rec.causal.array, f.causal.array)
        XCTAssertEqual(rec.refined.array, f.refined.array)
        XCTAssertEqual(rec.bandEnergy.array, f.bandEnergy.array)
        for p in 0..<20 { for c in 0..<3 { XCTAssertEqual(rec.refined[0, c, p / 5, p % 5], out[0, 1 + p, c]) } }
    }
}
