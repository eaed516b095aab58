import XCTest
import Numerics
import Layers
import Heads

final class DeformableAttentionTests: XCTestCase {
    func testCoreMatchesPyTorchGridSampleForwardAndBackward() throws {
        let fx = try loadFixture("deformable_attention")["core"] as! [String: Any]
        let shapes = levelShapes(fx["shapes"])
        let value = tensor(fx["value"]), loc = tensor(fx["locations"]), w = tensor(fx["weights"]), r = tensor(fx["R"])
        let expected = tensor(fx["out"])
        let out = Tensor(zeros: expected.shape)
        DeformableAttentionCore.forward(value: value, shapes: shapes, locations: loc, weights: w, into: out)
        XCTAssertLessThan(relativeError(out, expected), 1e-5)
        let dv = Tensor(zeros: value.shape), dl = Tensor(zeros: loc.shape), dw = Tensor(zeros: w.shape)
        DeformableAttentionCore.backward(dOutput: r, value: value, shapes: shapes, locations: loc, weights: w,
                                         dValue: dv, dLocations: dl, dWeights: dw)
        XCTAssertLessThan(relativeError(dv, tensor(fx["dvalue"])), 1e-5)
        XCTAssertLessThan(relativeError(dl, tensor(fx["dlocations"])), 1e-5)
        XCTAssertLessThan(relativeError(dw, tensor(fx["dweights"])), 1e-5)
    }

    /// Locations kept ≥ 0.1 pixel away from the bilinear cell edges (where the sampling is not
    /// differentiable), some of them outside the map (zero padding).
    func randomLocations(_ shape: [Int], shapes: [(h: Int, w: Int)], _ rng: inout RandomGenerator) -> Tensor {
        let t = Tensor(zeros: shape)
        let L = shape[3], P = shape[4]
        for i in 0..<(t.count / 2) {
            let l = (i / P) % L
            for (c, n) in [(0, shapes[l].w), (1, shapes[l].h)] {
                let px = Float(rng.integer(below: n + 2) - 1) + rng.uniform(0.1, 0.9) - 0.5
                t.data[2 * i + c] = (px + 0.5) / Float(n)
            }
        }
        return t
    }

    func testCoreGradientsMatchFiniteDifferences() {
        var rng = RandomGenerator(seed: 11)
        let shapes: [(h: Int, w: Int)] = [(4, 5), (3, 2), (1, 2)]
        let (B, NH, D, Q, P) = (2, 2, 4, 3, 2)
        let S = shapes.reduce(0) { $0 + $1.h * $1.w }
        let value = randomTensor([B, S, NH, D], &rng)
        let loc = randomLocations([B, Q, NH, 3, P, 2], shapes: shapes, &rng)
        let w = Tensor(zeros: [B, Q, NH, 3, P]); rng.fillUniform(w, 0, 1)
        let out = Tensor(zeros: [B, Q, NH * D])
        let r = randomTensor(out.shape, &rng)
        let f = { () -> Double in
            DeformableAttentionCore.forward(value: value, shapes: shapes, locations: loc, weights: w, into: out)
            return objective(out, r)
        }
        let dv = Tensor(zeros: value.shape), dl = Tensor(zeros: loc.shape), dw = Tensor(zeros: w.shape)
        _ = f()
        DeformableAttentionCore.backward(dOutput: r, value: value, shapes: shapes, locations: loc, weights: w,
                                         dValue: dv, dLocations: dl, dWeights: dw)
        XCTAssertLessThan(finiteDifferenceError(of: value, analytic: dv, eps: 1e-2, f), 1e-3)
        XCTAssertLessThan(finiteDifferenceError(of: loc, analytic: dl, eps: 1e-3, limit: 400, f), 5e-3)
        XCTAssertLessThan(finiteDifferenceError(of: w, analytic: dw, eps: 1e-2, f), 1e-3)
        // Accumulation: a second backward doubles the gradients.
        let dv2 = dv.clone()
        DeformableAttentionCore.backward(dOutput: r, value: value, shapes: shapes, locations: loc, weights: w,
                                         dValue: dv2, dLocations: nil, dWeights: nil)
        for i in 0..<dv.count { XCTAssertEqual(dv2.data[i], 2 * dv.data[i], accuracy: 1e-5) }
    }

    func makeModule(_ fx: [String: Any]) -> MultiScaleDeformableAttention {
        let m = MultiScaleDeformableAttention(channels: fx["channels"] as! Int, heads: fx["heads"] as! Int,
                                              levels: fx["levels"] as! Int, points: fx["points"] as! Int)
        let params = fx["params"] as! [String: Any]
        for p in m.namedParameters { p.parameter.value.copy(from: tensor(params[p.name])) }
        m.setRequiresGrad(true)
        return m
    }

    func testModuleMatchesPyTorchForwardAndGradients() throws {
        let fx = try loadFixture("deformable_attention")["module"] as! [String: Any]
        let m = makeModule(fx)
        let shapes = levelShapes(fx["shapes"])
        let query = tensor(fx["query"]), value = tensor(fx["value"]), ref = tensor(fx["reference"]), r = tensor(fx["R"])
        let out = Tensor(zeros: query.shape)
        m.forward(query: query, value: value, reference: ref, shapes: shapes, into: out)
        XCTAssertLessThan(relativeError(out, tensor(fx["out"])), 1e-5)
        let dq = Tensor(zeros: query.shape), dv = Tensor(zeros: value.shape)
        m.backward(dOutput: r, query: query, value: value, dQuery: dq, dValue: dv)
        XCTAssertLessThan(relativeError(dq, tensor(fx["dquery"])), 1e-4)
        XCTAssertLessThan(relativeError(dv, tensor(fx["dvalue"])), 1e-4)
        let grads = fx["grads"] as! [String: Any]
        XCTAssertEqual(m.namedParameters.count, 8)
        for p in m.namedParameters {
            XCTAssertLessThan(relativeError(p.parameter.grad!, tensor(grads[p.name])), 1e-4, p.name)
        }
    }

    func testModuleInitialisationIsMmcvGrid() {
        var rng = RandomGenerator(seed: 1)
        let m = MultiScaleDeformableAttention(channels: 16, heads: 4, levels: 2, points: 3)
        m.reset(rng: &rng)
        let b = m.samplingOffsets.bias!.value
        // head 1 points at 90°: (cos, sin) / max = (0, 1); point p scaled by p + 1.
        XCTAssertEqual(b.data[((1 * 2 + 1) * 3 + 2) * 2], 0, accuracy: 1e-6)
        XCTAssertEqual(b.data[((1 * 2 + 1) * 3 + 2) * 2 + 1], 3, accuracy: 1e-6)
        // head 0 → (1, 0), point 0.
        XCTAssertEqual(b.data[0], 1); XCTAssertEqual(b.data[1], 0)
        XCTAssertEqual(Kernels.l2Norm(m.attentionWeights.weight.value), 0)
        XCTAssertEqual(Kernels.l2Norm(m.samplingOffsets.weight.value), 0)
        XCTAssertGreaterThan(Kernels.l2Norm(m.valueProj.weight.value), 0)
    }
}
