import XCTest
import Numerics
import Heads

final class Mask2FormerLossTests: XCTestCase {
    func testCriterionMatchesPyTorchCostsAssignmentLossesAndGradients() throws {
        let fx = try loadFixture("mask2former_loss")
        let (B, Q, K) = (fx["B"] as! Int, fx["Q"] as! Int, fx["K"] as! Int)
        let labelsT = tensor(fx["labels"])
        let (H, W) = (labelsT.shape[1], labelsT.shape[2])
        let labels = labelsT.array.map { UInt8($0) }
        let targets = (0..<B).map { b in
            labels[(b * H * W)..<((b + 1) * H * W)].withUnsafeBufferPointer {
                MaskTargets(labels: $0, height: H, width: W, numClasses: K)
            }
        }
        XCTAssertEqual(targets[1].classes, [0, 1, 3])
        let cls = tensor(fx["class_logits"]), masks = tensor(fx["mask_logits"])
        let matching = (fx["matching_points"] as! [Any]).map { tensor($0) }
        // Matching costs of each image.
        let costs = (fx["costs"] as! [Any]).map { tensor($0) }
        for b in 0..<B {
            let Pm = matching[b].shape[1], G = targets[b].classes.count
            let mp = Tensor(zeros: [Q, Pm]), tp = Tensor(zeros: [G, Pm])
            PointSample.forward(maps: masks.slice(b), points: matching[b], into: mp)
            PointSample.forward(maps: targets[b].masks, points: matching[b], into: tp)
            let c = Mask2FormerLoss.matchingCost(classLogits: cls.slice(b), maskPoints: mp, targetPoints: tp,
                                                 classes: targets[b].classes)
            XCTAssertLessThan(relativeError(Tensor(shape: [Q, G], values: c), costs[b]), 1e-5)
        }
        var settings = Mask2FormerLossSettings()
        settings.points = fx["P"] as! Int
        let criterion = Mask2FormerCriterion(numClasses: K, settings: settings)
        var rng = RandomGenerator(seed: 0)
        let dClass = Tensor(zeros: cls.shape), dMask = Tensor(zeros: masks.shape)
        let terms = criterion.loss(classLogits: cls, maskLogits: masks, targets: targets,
                                   normalizer: Float(fx["normalizer"] as! Int),
                                   points: .given(matching: matching, candidates: tensor(fx["candidates"]),
                                                  fresh: tensor(fx["fresh"])),
                                   rng: &rng, dClass: dClass, dMask: dMask)
        XCTAssertEqual(terms.assignments, (fx["assignments"] as! [[Int]]))
        XCTAssertEqual(terms.classification, fx["loss_cls"] as! Double, accuracy: 1e-5)
        XCTAssertEqual(terms.mask, fx["loss_mask"] as! Double, accuracy: 1e-5)
        XCTAssertEqual(terms.dice, fx["loss_dice"] as! Double, accuracy: 1e-5)
        XCTAssertLessThan(relativeError(dClass, tensor(fx["dclass"])), 1e-5)
        XCTAssertLessThan(relativeError(dMask, tensor(fx["dmask"])), 1e-5)
    }

    func testMaskAndClassLossGradientsMatchFiniteDifferences() {
        var rng = RandomGenerator(seed: 5)
        let (N, P) = (3, 30)
        let x = randomTensor([N, P], &rng, scale: 2)
        let t = Tensor(zeros: [N, P]); rng.fillUniform(t, 0, 1)
        let dx = Tensor(zeros: [N, P])
        _ = Mask2FormerLoss.maskLosses(pointLogits: x, pointTargets: t, normalizer: 2.5, dPointLogits: dx)
        let fMask = { () -> Double in
            let l = Mask2FormerLoss.maskLosses(pointLogits: x, pointTargets: t, normalizer: 2.5, dPointLogits: nil)
            return l.mask + l.dice
        }
        XCTAssertLessThan(finiteDifferenceError(of: x, analytic: dx, eps: 1e-2, fMask), 1e-3)

        let logits = randomTensor([7, 5], &rng)
        let y = [4, 0, 4, 2, 4, 4, 1]
        let dl = Tensor(zeros: logits.shape)
        _ = Mask2FormerLoss.classificationLoss(logits: logits, targets: y, dLogits: dl)
        XCTAssertLessThan(finiteDifferenceError(of: logits, analytic: dl, eps: 1e-2) {
            Mask2FormerLoss.classificationLoss(logits: logits, targets: y, dLogits: nil)
        }, 1e-3)

        // Point sampling's adjoint: Σ r ⊙ sample(m) is linear in m with gradient scatter(r).
        let maps = randomTensor([2, 4, 6], &rng)
        let pts = Tensor(zeros: [2, 9, 2]); rng.fillUniform(pts, -0.1, 1.1)
        let out = Tensor(zeros: [2, 9]), r = randomTensor([2, 9], &rng), dm = Tensor(zeros: maps.shape)
        PointSample.backward(dOut: r, points: pts, dMaps: dm)
        XCTAssertLessThan(finiteDifferenceError(of: maps, analytic: dm, eps: 1e-2) {
            PointSample.forward(maps: maps, points: pts, into: out)
            return objective(out, r)
        }, 1e-3)
    }

    func testImportanceSamplingKeepsMostUncertainCandidates() {
        // Logits = x-coordinate − 0.5 on a wide map: the uncertain points are those near x = 0.5.
        let w = 64
        let maps = Tensor(zeros: [1, 2, w])
        for i in 0..<(2 * w) { maps.data[i] = (Float(i % w) + 0.5) / Float(w) - 0.5 }
        var rng = RandomGenerator(seed: 2)
        var s = Mask2FormerLossSettings()
        s.points = 20
        let pts = Mask2FormerLoss.importancePoints(maskLogits: maps, settings: s, rng: &rng)
        XCTAssertEqual(pts.shape, [1, 20, 2])
        // 15 chosen among 60 uniform candidates: all within the central quarter.
        for j in 0..<15 { XCTAssertLessThan(abs(pts.data[2 * j] - 0.5), 0.2) }
    }

    func testUncertainPointsSelectTheSmallestMagnitudesWithTiesToEarlierCandidates() {
        // A 1×8 map with integer logits (many ties in |x|); candidates at the pixel centres.
        var rng = RandomGenerator(seed: 9)
        for _ in 0..<50 {
            let w = 8, C = 24, P = 10, k = 7
            let map = Tensor(shape: [1, 1, w], values: (0..<w).map { _ in Float(rng.integer(below: 7) - 3) })
            let cand = Tensor(zeros: [1, C, 2])
            var idx: [Int] = []
            for j in 0..<C {
                let x = rng.integer(below: w)
                idx.append(x)
                cand.data[2 * j] = (Float(x) + 0.5) / Float(w); cand.data[2 * j + 1] = 0.5
            }
            let fresh = Tensor(zeros: [1, P - k, 2]); rng.fillUniform(fresh, 0, 1)
            let pts = Mask2FormerLoss.uncertainPoints(maskLogits: map, candidates: cand, fresh: fresh, points: P)
            let expected = (0..<C).sorted { a, b in
                let ua = abs(map.data[idx[a]]), ub = abs(map.data[idx[b]])
                return ua < ub || (ua == ub && a < b)
            }.prefix(k).sorted()
            for (n, j) in expected.enumerated() { XCTAssertEqual(pts.data[2 * n], cand.data[2 * j]) }
            for j in 0..<(P - k) { XCTAssertEqual(pts.data[2 * (k + j)], fresh.data[2 * j]) }
        }
    }

    func testCriterionWithoutTargetsGivesClassLossOnly() {
        var rng = RandomGenerator(seed: 1)
        let cls = randomTensor([1, 4, 3], &rng), masks = randomTensor([1, 4, 3, 3], &rng)
        let labels = [UInt8](repeating: 255, count: 16)
        let t = labels.withUnsafeBufferPointer { MaskTargets(labels: $0, height: 4, width: 4, numClasses: 2) }
        let dMask = Tensor(zeros: masks.shape)
        let terms = Mask2FormerCriterion(numClasses: 2).loss(classLogits: cls, maskLogits: masks, targets: [t],
                                                              normalizer: 1, rng: &rng, dClass: nil, dMask: dMask)
        XCTAssertEqual(terms.mask, 0); XCTAssertEqual(terms.dice, 0)
        XCTAssertGreaterThan(terms.classification, 0)
        XCTAssertEqual(Kernels.l2Norm(dMask), 0)
    }

    /// More classes in an image than queries (e.g. 4 PEFT tokens, 19 classes): every query is
    /// matched to a distinct target, the cheapest such choice (brute force over all of them),
    /// the rest stay unmatched, and the loss is finite instead of a trap.
    func testMoreTargetsThanQueriesMatchesEveryQueryAndLeavesTheRestUnmatched() {
        var rng = RandomGenerator(seed: 5)
        let (Q, G) = (2, 4)
        let cost = (0..<(Q * G)).map { _ in rng.uniform(0, 1) }
        let a = Mask2FormerCriterion.match(cost: cost, queries: Q, targets: G)
        XCTAssertEqual(a.filter { $0 >= 0 }.sorted(), [0, 1])
        var best = Float.infinity
        for g0 in 0..<G { for g1 in 0..<G where g1 != g0 { best = min(best, cost[0 * G + g0] + cost[1 * G + g1]) } }
        var got: Float = 0
        for (g, q) in a.enumerated() where q >= 0 { got += cost[q * G + g] }
        XCTAssertEqual(got, best, accuracy: 1e-6)

        // Through the criterion: 4 classes present, 2 queries.
        var labels = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { labels[i] = UInt8(i / 4) }
        let t = labels.withUnsafeBufferPointer { MaskTargets(labels: $0, height: 4, width: 4, numClasses: 4) }
        let cls = randomTensor([1, Q, 5], &rng), masks = randomTensor([1, Q, 4, 4], &rng)
        let dMask = Tensor(zeros: masks.shape), dClass = Tensor(zeros: cls.shape)
        let terms = Mask2FormerCriterion(numClasses: 4).loss(classLogits: cls, maskLogits: masks, targets: [t],
                                                              normalizer: 4, rng: &rng, dClass: dClass, dMask: dMask)
        XCTAssertEqual(terms.assignments.first?.filter { $0 >= 0 }.count, Q)
        XCTAssertTrue(terms.total.isFinite && terms.mask > 0)
        XCTAssertGreaterThan(Kernels.l2Norm(dMask), 0)
    }
}
