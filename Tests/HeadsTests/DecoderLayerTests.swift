import XCTest
import Numerics
import Layers
import Heads

final class DecoderLayerTests: XCTestCase {
    func load(_ m: Module, _ params: [String: Any]) {
        for p in m.namedParameters {
            guard let t = params[p.name] else { XCTFail("fixture lacks \(p.name)"); continue }
            p.parameter.value.copy(from: tensor(t))
        }
        XCTAssertEqual(m.namedParameters.count, params.count)
        m.setRequiresGrad(true)
        m.zeroGrad()
    }

    func testMaskedAttentionMatchesPyTorchForwardAndGradients() throws {
        let fx = try loadFixture("decoder_layer")
        let a = fx["attention"] as! [String: Any]
        let mha = MultiheadAttention(channels: fx["C"] as! Int, heads: fx["heads"] as! Int)
        load(mha, a["params"] as! [String: Any])
        let q = tensor(a["query"]), k = tensor(a["key"]), v = tensor(a["value"]), r = tensor(a["R"])
        let mask = a["mask"] as! [Bool]
        let out = Tensor(zeros: q.shape)
        mha.forward(query: q, key: k, value: v, mask: mask, into: out)
        XCTAssertLessThan(relativeError(out, tensor(a["out"])), 1e-5)
        // masked keys get zero probability
        let p = mha.attentionProbabilities, (Q, S) = (q.shape[1], k.shape[1])
        for b in 0..<2 { for h in 0..<2 { for i in 0..<Q { for j in 0..<S where mask[(b * Q + i) * S + j] {
            XCTAssertEqual(p.data[((b * 2 + h) * Q + i) * S + j], 0)
        } } } }
        let dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        mha.backward(dOutput: r, query: q, key: k, value: v, dQuery: dq, dKey: dk, dValue: dv)
        XCTAssertLessThan(relativeError(dq, tensor(a["dquery"])), 1e-4)
        XCTAssertLessThan(relativeError(dk, tensor(a["dkey"])), 1e-4)
        XCTAssertLessThan(relativeError(dv, tensor(a["dvalue"])), 1e-4)
        let grads = a["grads"] as! [String: Any]
        for np in mha.namedParameters {
            XCTAssertLessThan(relativeError(np.parameter.grad!, tensor(grads[np.name])), 1e-4, np.name)
        }
    }

    func testMaskedAttentionGradientsMatchFiniteDifferences() {
        var rng = RandomGenerator(seed: 8)
        let mha = MultiheadAttention(channels: 6, heads: 3)
        for p in mha.namedParameters { rng.fillNormal(p.parameter.value, std: 0.4) }
        mha.setRequiresGrad(true)
        let q = randomTensor([2, 3, 6], &rng), kv = randomTensor([2, 4, 6], &rng)
        let mask = (0..<24).map { _ in rng.uniform() < 0.4 }
        let out = Tensor(zeros: q.shape), r = randomTensor(q.shape, &rng)
        let f = { () -> Double in
            mha.forward(query: q, key: kv, value: kv, mask: mask, into: out)
            return objective(out, r)
        }
        _ = f()
        let dq = Tensor(zeros: q.shape), dkv = Tensor(zeros: kv.shape)
        mha.backward(dOutput: r, query: q, key: kv, value: kv, dQuery: dq, dKey: dkv, dValue: dkv)
        XCTAssertLessThan(finiteDifferenceError(of: q, analytic: dq, eps: 1e-2, f), 2e-3)
        XCTAssertLessThan(finiteDifferenceError(of: kv, analytic: dkv, eps: 1e-2, f), 2e-3)
        XCTAssertLessThan(finiteDifferenceError(of: mha.inProjWeight.value, analytic: mha.inProjWeight.grad!, eps: 1e-2, f), 2e-3)
    }

    func testDecoderLayerMatchesPyTorchForwardAndGradients() throws {
        let fx = try loadFixture("decoder_layer")
        let l = fx["layer"] as! [String: Any]
        let layer = DecoderLayer(channels: fx["C"] as! Int, heads: fx["heads"] as! Int, feedforward: fx["ffn"] as! Int)
        load(layer, l["params"] as! [String: Any])
        let x = tensor(l["query"]), p = tensor(l["query_pos"]), m = tensor(l["memory"]), mp = tensor(l["memory_pos"])
        let mask = (fx["attention"] as! [String: Any])["mask"] as! [Bool]
        let out = Tensor(zeros: x.shape)
        layer.forward(query: x, queryPos: p, memory: m, memoryPos: mp, mask: mask, into: out)
        XCTAssertLessThan(relativeError(out, tensor(l["out"])), 1e-5)
        let dx = Tensor(zeros: x.shape), dp = Tensor(zeros: p.shape), dm = Tensor(zeros: m.shape)
        layer.backward(dOutput: tensor(l["R"]), query: x, dQuery: dx, dQueryPos: dp, dMemory: dm)
        XCTAssertLessThan(relativeError(dx, tensor(l["dquery"])), 1e-4)
        XCTAssertLessThan(relativeError(dp, tensor(l["dquery_pos"])), 1e-4)
        XCTAssertLessThan(relativeError(dm, tensor(l["dmemory"])), 1e-4)
        let grads = l["grads"] as! [String: Any]
        for np in layer.namedParameters {
            XCTAssertLessThan(relativeError(np.parameter.grad!, tensor(grads[np.name])), 1e-4, np.name)
        }
    }

    func testSinePositionalEncodingMatchesMmdet() throws {
        let s = try loadFixture("decoder_layer")["sine"] as! [String: Any]
        let t = SinePositionalEncoding.tokens(height: s["H"] as! Int, width: s["W"] as! Int, features: s["F"] as! Int)
        XCTAssertLessThan(relativeError(t, tensor(s["tokens"])), 1e-5)
    }
}
