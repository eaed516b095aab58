import Core
import Foundation
import ImageIO

/// The curves of a training run, read from `WORK_DIR/metrics.jsonl` (reference §Command line: one JSON
/// object a line).
///
/// Every line with a numeric `step` (or `iter`) contributes:
/// * `loss`, `lr` — training records;
/// * per-domain mIoU, in any of the shapes a record may take: the trainer's
///   `{"step": s, "mean_miou": m, "miou": {"fog": m_fog, ...}}`,
///   `{"eval": {"fog": {"miou": m, ...}, ...}}` (also under `val`/`evaluation`/`domains`,
///   or a domain mapped straight to a number), `{"domain": "fog", "miou": m}`,
///   or flat keys `"miou/fog"`, `"fog/miou"`, `"miou_fog"`. `null` values are skipped.
/// mIoU values are fractions in [0, 1]. Lines that are not objects are an error naming the
/// file and line; unknown keys are ignored.
public struct TrainingMetrics: Sendable {
    public typealias Point = (x: Double, y: Double)
    public var loss: [Point] = []
    public var lr: [Point] = []
    /// Domain name → mIoU points, in file order.
    public var miou: [String: [Point]] = [:]

    public init() {}

    /// Domains in first-seen order.
    public private(set) var domains: [String] = []

    /// Reads `workDir/metrics.jsonl`.
    public static func load(workDir: String) throws -> TrainingMetrics {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: workDir, isDirectory: &isDir), isDir.boolValue else {
            throw CausalTuneError("\(workDir): no such work directory")
        }
        let path = (workDir as NSString).appendingPathComponent("metrics.jsonl")
        guard FileManager.default.fileExists(atPath: path) else {
            throw CausalTuneError("\(path): missing (not a training work directory, or the run has not logged yet)")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw CausalTuneError("\(path): cannot read as UTF-8 text")
        }
        return try parse(text, file: path)
    }

    /// Parses metrics.jsonl text (`file` names it in errors).
    public static func parse(_ text: String, file: String) throws -> TrainingMetrics {
        var m = TrainingMetrics()
        var lineNo = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw CausalTuneError("\(file):\(lineNo): not a JSON object")
            }
            guard let step = number(obj["step"]) ?? number(obj["iter"]) else { continue }
            if let l = number(obj["loss"]) { m.loss.append((step, l)) }
            if let l = number(obj["lr"]) { m.lr.append((step, l)) }
            if let d = obj["domain"] as? String, let v = number(obj["miou"]) { m.add(d, step, v) }
            for key in ["miou", "eval", "val", "evaluation", "domains", "results"] {
                guard let evals = obj[key] as? [String: Any] else { continue }
                for d in evals.keys.sorted() {
                    if let v = number(evals[d]) { m.add(d, step, v) } else if let r = evals[d] as? [String: Any], let v = number(r["miou"] ?? r["mIoU"]) {
                        m.add(d, step, v)
                    }
                }
            }
            for (k, value) in obj.sorted(by: { $0.key < $1.key }) {
                guard let v = number(value) else { continue }
                if k.hasPrefix("miou/") { m.add(String(k.dropFirst(5)), step, v) } else if k.hasSuffix("/miou") {
                    m.add(String(k.dropLast(5)), step, v)
                } else if k.hasPrefix("miou_") { m.add(String(k.dropFirst(5)), step, v) }
            }
        }
        return m
    }

    private mutating func add(_ domain: String, _ step: Double, _ v: Double) {
        if miou[domain] == nil { domains.append(domain) }
        miou[domain, default: []].append((step, v))
    }

    private static func number(_ any: Any?) -> Double? {
        if let n = any as? NSNumber { return n.doubleValue }
        if let d = any as? Double { return d }
        if let i = any as? Int { return Double(i) }
        return nil
    }

    /// The step of the last evaluation and the mean over domains of each domain's mIoU at
    /// that step (domains not evaluated at that step are left out); nil when the run has no
    /// evaluation.
    public var finalMeanMIoU: (step: Double, miou: Double, domains: [String: Double])? { finalMIoU(excluding: []) }

    /// `finalMeanMIoU` with the mean taken over the domains not in `excluded` (e.g. the
    /// training domain `source`, which is not an unseen target); `domains` lists them all.
    /// nil when no domain is left to average.
    public func finalMIoU(excluding excluded: Set<String>) -> (step: Double, miou: Double, domains: [String: Double])? {
        guard let last = miou.values.compactMap({ $0.last?.x }).max() else { return nil }
        var per: [String: Double] = [:]
        for d in domains { if let p = miou[d]?.last(where: { $0.x == last }) { per[d] = p.y } }
        let kept = per.filter { !excluded.contains($0.key) }
        guard !kept.isEmpty else { return nil }
        return (last, kept.values.reduce(0, +) / Double(kept.count), per)
    }

    /// The exponential moving average of `points` with factor `alpha` (bias-corrected), for
    /// a readable loss curve over noisy steps.
    public static func smoothed(_ points: [Point], alpha: Double = 0.9) -> [Point] {
        var out: [Point] = []
        var ema = 0.0, w = 0.0
        for p in points {
            ema = alpha * ema + (1 - alpha) * p.y
            w = alpha * w + (1 - alpha)
            out.append((p.x, ema / w))
        }
        return out
    }
}

/// The training-curve picture of a run: three panels stacked (loss, learning rate, mIoU per
/// domain vs step), each a `LineChart` with its own axes.
public enum CurvesPicture {
    public static func render(_ m: TrainingMetrics, title: String, width: Int = 720) -> Canvas {
        var panels: [Canvas] = []
        // All panels share the step axis: from 0 to the last step seen anywhere.
        let allSteps = m.loss.map { $0.x } + m.lr.map { $0.x } + m.miou.values.flatMap { $0.map { $0.x } }
        let xr: ClosedRange<Double>? = allSteps.max().map { 0...Swift.max($0, 1) }
        var lossSeries = [LineChart.Series(name: "loss", points: m.loss, color: RGB(160, 190, 225))]
        if m.loss.count >= 20 {
            lossSeries.append(LineChart.Series(name: "loss (EMA 0.9)", points: TrainingMetrics.smoothed(m.loss), color: RGB.series[0]))
        }
        panels.append(LineChart(title: "\(title): training loss", xLabel: "step", yLabel: "loss",
                                series: lossSeries, width: width, height: 300, xRange: xr).render())
        panels.append(LineChart(title: "learning rate", xLabel: "step", yLabel: "lr",
                                series: [LineChart.Series(name: "lr", points: m.lr, color: RGB.series[1])],
                                width: width, height: 240, xRange: xr).render())
        if !m.domains.isEmpty {
            let s = m.domains.enumerated().map { k, d in
                LineChart.Series(name: d, points: (m.miou[d] ?? []).map { ($0.x, 100 * $0.y) }, color: RGB.series[(k + 2) % RGB.series.count])
            }
            panels.append(LineChart(title: "mIoU per domain", xLabel: "step", yLabel: "mIoU (%)", series: s,
                                    width: width, height: 300, xRange: xr, markers: true).render())
        }
        return Canvas.stacked(panels, gap: 4)
    }
}
