import XCTest
import Numerics
import Layers
import Heads

final class LinearHeadTests: XCTestCase {
    let c = 4, k = 3, grid = (h: 2, w: 3), size = (h: 5, w: 7), batch = 2

    private func makeHead(seed: UInt64 = 1) -> LinearHead {
        var rng = RandomGenerator(seed: seed)
        let head = LinearHead(channels: c, numClasses: k, outIndices: [1, 3], rng: &rng)
        // Non-trivial norms and a larger W so that every path carries gradient.
        for p in head.parameters { rng.fillUniform(p.parameter.value, -0.8, 0.8) }
        return head
    }

    private func makeInputs(seed: UInt64 = 2) -> ([Tensor], LabelBatch) {
        var rng = RandomGenerator(seed: seed)
        let n = grid.h * grid.w
        let feats = (0..<2).map { _ -> Tensor in
            let t = Tensor(zeros: [batch, n, c]); rng.fillNormal(t); return t
        }
        var labels = [UInt8](repeating: 0, count: batch * size.h * size.w)
        for i in labels.indices { labels[i] = i % 7 == 3 ? 255 : UInt8(rng.integer(below: k)) }
        return (feats, LabelBatch(batch: batch, height: size.h, width: size.w, values: labels))
    }

    private func loss(_ head: LinearHead, _ feats: [Tensor], _ labels: LabelBatch) -> Double {
        let n = head.lossNormalizer(labels: labels)
        return head.forwardLoss(features: feats, grid: grid, labels: labels, normalizer: n).loss
    }

    /// Central differences in every parameter and every input feature element.
    func testGradientsMatchFiniteDifferences() {
        let head = makeHead()
        let (feats, labels) = makeInputs()
        let dFeats = feats.map { Tensor(zeros: $0.shape) }
        head.zeroGradients()
        _ = loss(head, feats, labels)
        head.backwardLoss(dFeatures: dFeats)

        let eps: Float = 1e-2
        var worst = 0.0
        func check(_ t: Tensor, _ g: Tensor, _ what: String) {
            for i in 0..<t.count {
                let old = t.data[i]
                t.data[i] = old + eps; let lp = loss(head, feats, labels)
                t.data[i] = old - eps; let lm = loss(head, feats, labels)
                t.data[i] = old
                let fd = (lp - lm) / Double(2 * eps)
                let err = abs(fd - Double(g.data[i])) / max(1e-3, abs(fd) + abs(Double(g.data[i])))
                worst = max(worst, err)
                XCTAssertLessThan(err, 2e-2, "\(what)[\(i)]: finite difference \(fd), backward \(g.data[i])")
            }
        }
        for p in head.parameters { check(p.parameter.value, p.parameter.grad!, p.name) }
        for j in 0..<2 { check(feats[j], dFeats[j], "features[\(j)]") }
    }

    func testParameterNamesAndShapesFollowSpec() {
        let head = makeHead()
        XCTAssertEqual(head.parameters.map(\.name),
                       ["head/norm0/weight", "head/norm0/bias", "head/norm1/weight", "head/norm1/bias",
                        "head/linear/weight", "head/linear/bias"])
        XCTAssertEqual(head.linear.weight.shape, [k, 2 * c])
    }

    /// Two ranks' halves with the global normaliser sum to the whole batch's gradient.
    func testSplitBatchWithGlobalNormalizerSumsToFullBatchGradient() {
        let (feats, labels) = makeInputs()
        let full = makeHead()
        full.zeroGradients()
        let nAll = full.lossNormalizer(labels: labels)
        let tAll = full.forwardLoss(features: feats, grid: grid, labels: labels, normalizer: nAll)
        full.backwardLoss(dFeatures: feats.map { Tensor(zeros: $0.shape) })

        let half = makeHead()
        half.zeroGradients()
        let per = size.h * size.w
        var sum = 0.0
        for b in 0..<batch {
            let f = feats.map { $0.rows(b..<b + 1) }
            let l = LabelBatch(batch: 1, height: size.h, width: size.w, values: Array(labels.values[b * per..<(b + 1) * per]))
            sum += half.forwardLoss(features: f, grid: grid, labels: l, normalizer: nAll).sum
            half.backwardLoss(dFeatures: f.map { Tensor(zeros: $0.shape) })
        }
        XCTAssertEqual(sum / Double(nAll), tAll.loss, accuracy: 1e-9 * max(1, tAll.loss))
        for (a, b) in zip(full.parameters, half.parameters) {
            for (x, y) in zip(a.parameter.grad!.array, b.parameter.grad!.array) {
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), a.name)
            }
        }
    }

    func testDefaultOutIndicesAreQuarterPoints() {
        XCTAssertEqual(defaultOutIndices(depth: 24), [7, 11, 15, 23])
        XCTAssertEqual(defaultOutIndices(depth: 40), [9, 19, 29, 39])
        XCTAssertEqual(defaultOutIndices(depth: 12), [2, 5, 8, 11])
    }
}
