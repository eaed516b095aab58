import XCTest
import Numerics
import Training

final class OptimizerTests: XCTestCase {
    /// Two parameters: `p` (a weight, decays) and `q` (a bias, no decay).
    private func makeSet() -> ParameterSet {
        let p = Tensor(shape: [4], values: [0.5, -1.25, 2.0, 0.0])
        let q = Tensor(shape: [2], values: [0.3, -0.7])
        return ParameterSet([(name: "head/linear/weight", value: p, grad: Tensor(zeros: [4])),
                             (name: "head/linear/bias", value: q, grad: Tensor(zeros: [2]))])
    }

    /// Expected values from torch 2.x (`/tmp/adamw_ref.py`, reproduced here):
    ///
    ///     p = Parameter([0.5, -1.25, 2.0, 0.0]); q = Parameter([0.3, -0.7])
    ///     opt = torch.optim.AdamW([{"params": [p], "weight_decay": 0.05},
    ///                              {"params": [q], "weight_decay": 0.0}],
    ///                             lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    ///     for each step i: set group lr to [1e-2, 8e-3, 5e-3][i], p.grad, q.grad as below; opt.step()
    func testAdamWMatchesPyTorchOverThreeSteps() {
        let set = makeSet()
        let opt = Optimizer(.adamw, parameters: set, weightDecay: 0.05, betas: (0.9, 0.999), eps: 1e-8)
        let gp: [[Float]] = [[0.1, -0.2, 0.3, 0.0], [0.05, 0.4, -0.3, 1e-3], [-0.2, 0.1, 0.0, -0.5]]
        let gq: [[Float]] = [[1.0, -2.0], [0.5, 0.25], [-3.0, 0.0]]
        let lrs = [1e-2, 8e-3, 5e-3]
        let expectedP: [[Float]] = [[0.489749998, -1.239375, 1.98899996, 0],
                                    [0.482096672, -1.24180806, 1.98862541, -0.00595300971],
                                    [0.483007938, -1.24357593, 1.98833168, -0.0027632094]]
        let expectedQ: [[Float]] = [[0.290000021, -0.689999998],
                                    [0.282542586, -0.685419738],
                                    [0.284278691, -0.683206856]]
        for i in 0..<3 {
            set["head/linear/weight"]!.grad.copy(from: Tensor(shape: [4], values: gp[i]))
            set["head/linear/bias"]!.grad.copy(from: Tensor(shape: [2], values: gq[i]))
            opt.step(lr: lrs[i])
            for (a, b) in zip(set["head/linear/weight"]!.value.array, expectedP[i]) { XCTAssertEqual(a, b, accuracy: 2e-7, "step \(i) p") }
            for (a, b) in zip(set["head/linear/bias"]!.value.array, expectedQ[i]) { XCTAssertEqual(a, b, accuracy: 2e-7, "step \(i) q") }
        }
        let m: [Float] = [-0.0074, 0.0298000015, -0.00270000054, -0.0499100015]
        let v: [Float] = [5.24775132e-05, 0.000209760052, 0.000179730108, 0.000250001001]
        for (a, b) in zip(opt.expAvg.array.prefix(4), m) { XCTAssertEqual(a, b, accuracy: 1e-9) }
        for (a, b) in zip(opt.expAvgSq.array.prefix(4), v) { XCTAssertEqual(a, b, accuracy: 1e-11) }
        XCTAssertEqual(opt.stepCount, 3)
    }

    func testSGDMovesByMinusLearningRateTimesGradient() {
        let set = makeSet()
        let before = set.values.array
        let opt = Optimizer(.sgd, parameters: set, weightDecay: 0)
        let g: [Float] = [0.1, -0.2, 0.3, 0.4, 1.0, -2.0]
        set.grads.copy(from: Tensor(shape: [6], values: g))
        opt.step(lr: 0.5)
        for i in 0..<6 { XCTAssertEqual(set.values.array[i], before[i] - 0.5 * g[i], accuracy: 1e-7) }
    }

    func testDecayGroupsFollowSpecNames() {
        XCTAssertFalse(ParameterSet.decays(name: "peft/tokens"))
        XCTAssertFalse(ParameterSet.decays(name: "peft/tokens_a"))
        XCTAssertFalse(ParameterSet.decays(name: "peft/tokens_b"))
        XCTAssertFalse(ParameterSet.decays(name: "peft/scale"))
        XCTAssertFalse(ParameterSet.decays(name: "peft/f_t/bias"))
        XCTAssertFalse(ParameterSet.decays(name: "head/norm2/weight"))
        XCTAssertFalse(ParameterSet.decays(name: "head/linear/bias"))
        // The Mask2Former head's mmdet module paths: biases and embeddings do not decay.
        XCTAssertFalse(ParameterSet.decays(name: "head/pixel_decoder.encoder.layers.0.ffn.layers.0.0.bias"))
        XCTAssertFalse(ParameterSet.decays(name: "head/transformer_decoder.layers.3.cross_attn.attn.in_proj_bias"))
        XCTAssertFalse(ParameterSet.decays(name: "head/transformer_decoder.layers.3.norms.0.weight"))
        XCTAssertFalse(ParameterSet.decays(name: "head/level_embed.weight"))
        XCTAssertTrue(ParameterSet.decays(name: "head/transformer_decoder.layers.3.cross_attn.attn.in_proj_weight"))
        XCTAssertTrue(ParameterSet.decays(name: "head/link.merge.weight"))
        XCTAssertTrue(ParameterSet.decays(name: "peft/f_t/weight"))
        XCTAssertTrue(ParameterSet.decays(name: "peft/f_d/weight"))
        XCTAssertTrue(ParameterSet.decays(name: "head/linear/weight"))
    }

    func testPolyScheduleMatchesMmsegClosedForm() {
        let s = LearningRateSchedule.poly(base: 1e-4, iters: 40_000, power: 0.9)
        XCTAssertEqual(s.rate(at: 0), 1e-4, accuracy: 1e-18)
        XCTAssertEqual(s.rate(at: 20_000), 1e-4 * pow(0.5, 0.9), accuracy: 1e-18)
        XCTAssertEqual(s.rate(at: 39_999), 1e-4 * pow(1.0 / 40_000, 0.9), accuracy: 1e-18)
        XCTAssertEqual(s.rate(at: 40_000), 0)
        // mmengine's recursive form lr_t = lr_{t−1}·(1 − 1/(T − t + 1))^p gives the same values.
        var lr = 1e-4
        let small = LearningRateSchedule.poly(base: 1e-4, iters: 10, power: 0.9)
        for t in 1...9 {
            lr *= pow(1 - 1 / Double(10 - t + 1), 0.9)
            XCTAssertEqual(small.rate(at: t), lr, accuracy: 1e-15)
        }
    }

    /// torch: a.grad = [3, 4, 0], b.grad = [0, 12]; clip_grad_norm_([a, b], 6.5) returns 13
    /// and leaves [1.49999988, 1.99999988, 0, 0, 5.99999952].
    func testClippingByGlobalNormMatchesPyTorch() {
        let g = Tensor(shape: [5], values: [3, 4, 0, 0, 12])
        let n = GradientClipping.clip(g, maxNorm: 6.5)
        XCTAssertEqual(n, 13, accuracy: 1e-9)
        let expected: [Float] = [1.49999988, 1.99999988, 0, 0, 5.99999952]
        for (a, b) in zip(g.array, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let small = Tensor(shape: [2], values: [0.3, 0.4])
        GradientClipping.clip(small, maxNorm: 1)
        XCTAssertEqual(small.array, [0.3, 0.4])
    }

    func testParameterSetGathersAndScattersModuleTensors() {
        let w = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let gw = Tensor(zeros: [2, 3])
        let b = Tensor(shape: [2], values: [7, 8])
        let gb = Tensor(zeros: [2])
        let set = ParameterSet([(name: "a/weight", value: w, grad: gw), (name: "a/bias", value: b, grad: gb)])
        XCTAssertEqual(set.values.array, [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(set["a/bias"]!.offset, 6)
        gw.fill(1); gb.fill(2)
        set.gatherGradients()
        XCTAssertEqual(set.grads.array, [1, 1, 1, 1, 1, 1, 2, 2])
        set.values.fill(0.5)
        set.scatterValues()
        XCTAssertEqual(w.array, [Float](repeating: 0.5, count: 6))
        set.zeroGradients()
        XCTAssertEqual(gw.array, [Float](repeating: 0, count: 6))
        XCTAssertEqual(set.grads.array, [Float](repeating: 0, count: 8))
    }
}
