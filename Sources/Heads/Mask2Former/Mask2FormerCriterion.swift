import Numerics
import Layers

/// Where the criterion's random points come from: drawn from a generator (training), or
/// given (parity tests against the reference, which draws with torch).
public enum LossPointSource {
    case random
    /// matching [B][1, P_m, 2]; candidates [N, 3P, 2] and fresh [N, P − ⌊0.75P⌋, 2] for the
    /// N matched pairs in (image, query) order.
    case given(matching: [Tensor], candidates: Tensor, fresh: Tensor)
}

/// The loss of one set of predictions (`Mask2FormerLoss` has the math): per image matching of
/// queries to target masks, then L_cls + L_mask + L_dice over the batch, with the gradients
/// of the class and mask logits. Matched pairs are ordered by image, then query index (mmdet's
/// `mask_preds[mask_weights > 0]`).
public struct Mask2FormerCriterion {
    public var settings: Mask2FormerLossSettings
    public let numClasses: Int   // K (the logits have K + 1 columns)

    public init(numClasses: Int, settings: Mask2FormerLossSettings = .init()) {
        self.numClasses = numClasses
        self.settings = settings
    }

    public struct Terms {
        public var classification = 0.0, mask = 0.0, dice = 0.0
        public var total: Double { classification + mask + dice }
        /// For each image, the matched query of each target (in the targets' order); −1 for a
        /// target left unmatched because the image has more targets than there are queries.
        public var assignments: [[Int]] = []
    }

    /// The matched query of each target for a cost [Q, G] (row-major), as scipy's
    /// `linear_sum_assignment`: with G ≤ Q every target gets a distinct query; with more
    /// targets than queries (more classes in an image than the head has queries) every query
    /// gets a distinct target and the other targets stay unmatched (−1, no mask loss).
    public static func match(cost: [Float], queries Q: Int, targets G: Int) -> [Int] {
        if G <= Q { return Assignment.solve(cost: cost, queries: Q, targets: G) }
        var transposed = [Float](repeating: 0, count: G * Q)
        for q in 0..<Q { for g in 0..<G { transposed[g * Q + q] = cost[q * G + g] } }
        let targetOfQuery = Assignment.solve(cost: transposed, queries: G, targets: Q)
        var queryOfTarget = [Int](repeating: -1, count: G)
        for (q, g) in targetOfQuery.enumerated() { queryOfTarget[g] = q }
        return queryOfTarget
    }

    /// classLogits [B, Q, K+1], maskLogits [B, Q, h, w], one `MaskTargets` per image,
    /// `normalizer` M = max(1, target masks averaged over ranks). Accumulates ∂L/∂logits into
    /// `dClass` / `dMask` when given. `classWeightSum` replaces the batch's Σ w of the
    /// classification loss (data-parallel training passes the global sum). Random points come
    /// from one shared `rng`. Work buffers come from `scratch` when given (keys `crit.*`,
    /// `loss.*`, `cost.*`), else are allocated.
    public func loss(classLogits: Tensor, maskLogits: Tensor, targets: [MaskTargets], normalizer: Float,
                     points source: LossPointSource = .random, rng: inout RandomGenerator,
                     dClass: Tensor?, dMask: Tensor?, classWeightSum: Double? = nil, scratch: ScratchArena? = nil) -> Terms {
        var generators = [rng]
        defer { rng = generators[0] }
        return loss(classLogits: classLogits, maskLogits: maskLogits, targets: targets, normalizer: normalizer,
                    points: source, generators: &generators, dClass: dClass, dMask: dMask, classWeightSum: classWeightSum,
                    scratch: scratch)
    }

    /// As above, with the random points of image b drawn from `generators[b]` (one per image)
    /// or all from `generators[0]` (one in all). Image b's draws, in order: its matching points,
    /// then the candidates and fresh points of its matched pairs — so with one generator per
    /// image the points of an image do not depend on which other images share its batch (data
    /// parallelism at any world size draws the same points).
    public func loss(classLogits: Tensor, maskLogits: Tensor, targets: [MaskTargets], normalizer: Float,
                     points source: LossPointSource = .random, generators: inout [RandomGenerator],
                     dClass: Tensor?, dMask: Tensor?, classWeightSum: Double? = nil, scratch: ScratchArena? = nil) -> Terms {
        let work = { (key: String, shape: [Int]) in Mask2FormerLoss.work(scratch, key, shape) }
        let (B, Q, K1) = (classLogits.shape[0], classLogits.shape[1], classLogits.shape[2])
        precondition(K1 == numClasses + 1 && maskLogits.rank == 4 && maskLogits.shape[0] == B && maskLogits.shape[1] == Q,
                     "Mask2FormerCriterion: class \(classLogits.shape), masks \(maskLogits.shape)")
        precondition(targets.count == B, "Mask2FormerCriterion: \(targets.count) targets for batch \(B)")
        precondition(generators.count == 1 || generators.count == B,
                     "Mask2FormerCriterion: \(generators.count) generators for batch \(B) (1 or one per image)")
        let (h, w) = (maskLogits.shape[2], maskLogits.shape[3])
        let shared = generators.count == 1
        let gen = { (b: Int) -> Int in shared ? 0 : b }
        var terms = Terms()
        var classTargets = [Int](repeating: numClasses, count: B * Q)
        var pairs: [(b: Int, q: Int, g: Int)] = []
        for b in 0..<B {
            let t = targets[b], G = t.classes.count
            if G == 0 { terms.assignments.append([]); continue }
            let pts: Tensor
            switch source {
            case .random: pts = Mask2FormerLoss.uniformPoints(1, settings.points, rng: &generators[gen(b)], scratch: scratch)
            case .given(let matching, _, _): pts = matching[b]
            }
            let Pm = pts.shape[1]
            let maskPts = work("crit.matchLogits", [Q, Pm]), targetPts = work("crit.matchTargets", [G, Pm])
            PointSample.forward(maps: maskLogits.slice(b), points: pts, into: maskPts)
            PointSample.forward(maps: t.masks, points: pts, into: targetPts)
            let cost = Mask2FormerLoss.matchingCost(classLogits: classLogits.slice(b), maskPoints: maskPts,
                                                    targetPoints: targetPts, classes: t.classes, settings: settings,
                                                    scratch: scratch)
            let assignment = Mask2FormerCriterion.match(cost: cost, queries: Q, targets: G)
            terms.assignments.append(assignment)
            var imagePairs: [(b: Int, q: Int, g: Int)] = []
            for (g, q) in assignment.enumerated() where q >= 0 {
                classTargets[b * Q + q] = t.classes[g]
                imagePairs.append((b, q, g))
            }
            pairs += imagePairs.sorted { $0.q < $1.q }
        }
        terms.classification = Mask2FormerLoss.classificationLoss(
            logits: classLogits.reshaped([B * Q, K1]), targets: classTargets,
            dLogits: dClass?.reshaped([B * Q, K1]), settings: settings, weightSum: classWeightSum)
        let N = pairs.count
        if N == 0 { return terms }
        // Matched predictions [N, h, w] and their point samples.
        let preds = work("crit.matched", [N, h, w])
        for (i, p) in pairs.enumerated() {
            (preds.data + i * h * w).update(from: maskLogits.data + (p.b * Q + p.q) * h * w, count: h * w)
        }
        let points: Tensor
        switch source {
        case .random:
            // Per image (its pairs are consecutive rows): candidates, then fresh points.
            let P = settings.points, k = Int(settings.importanceSampleRatio * Float(P))
            let C = settings.oversampleRatio * P
            let candidates = work("crit.candidates", [N, C, 2]), fresh = work("crit.fresh", [N, P - k, 2])
            var start = 0
            while start < N {
                let b = pairs[start].b
                var end = start
                while end < N && pairs[end].b == b { end += 1 }
                generators[gen(b)].fillUniform(candidates.rows(start..<end), 0, 1)
                generators[gen(b)].fillUniform(fresh.rows(start..<end), 0, 1)
                start = end
            }
            points = Mask2FormerLoss.uncertainPoints(maskLogits: preds, candidates: candidates, fresh: fresh, points: P,
                                                     scratch: scratch)
        case .given(_, let candidates, let fresh):
            points = Mask2FormerLoss.uncertainPoints(maskLogits: preds, candidates: candidates, fresh: fresh,
                                                     points: settings.points, scratch: scratch)
        }
        let P = points.shape[1]
        let predPts = work("crit.pointLogits", [N, P]), targetPts = work("crit.pointTargets", [N, P])
        // The taps of the loss points on the mask logits serve the forward and the backward.
        let taps = BilinearTaps(points: points, width: w, height: h)
        PointSample.forward(maps: preds, taps: taps, into: predPts)
        for (i, p) in pairs.enumerated() {
            let m = targets[p.b].masks, (H, W) = (m.shape[1], m.shape[2])
            PointSample.forward(maps: m.slice(p.g).reshaped([1, H, W]),
                                points: points.slice(i).reshaped([1, P, 2]),
                                into: targetPts.slice(i).reshaped([1, P]))
        }
        let dPts = dMask == nil ? nil : work("crit.dPointLogits", [N, P])
        let (lm, ld) = Mask2FormerLoss.maskLosses(pointLogits: predPts, pointTargets: targetPts, normalizer: normalizer,
                                                  dPointLogits: dPts, settings: settings)
        terms.mask = lm
        terms.dice = ld
        if let dMask, let dPts {
            let dPreds = work("crit.dMatched", [N, h, w])
            PointSample.backward(dOut: dPts, taps: taps, dMaps: dPreds)
            for (i, p) in pairs.enumerated() {
                Kernels.axpy(1, dPreds.data + i * h * w, dMask.data + (p.b * Q + p.q) * h * w, count: h * w)
            }
        }
        return terms
    }
}
