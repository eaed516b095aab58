import Core
import Foundation

/// The filter cut-off sweep: a grid of `filter.low` × `filter.high`, one
/// training run per point, summarised as an accuracy matrix (heat map) and a CSV table.
///
/// Point `(l, h)` trains in `ROOT/low<l>_high<h>` (cut-offs printed with up to three
/// decimals, e.g. `low0.2_high0.7`); its score is the **mean over target domains of the
/// last evaluation's mIoU** in that directory's `metrics.jsonl`
/// (`TrainingMetrics.finalMIoU(excluding:)`; the training domain — `source` by default —
/// is evaluated too but left out of the mean, as DGSS reports unseen domains only). Points with `low ≥ high` are not a band and are
/// skipped (grey cells). The heat map's rows are `low` (top = smallest), columns `high`.
public enum Sweep {
    /// One grid point.
    public struct Point: Equatable, Sendable {
        public let low: Double
        public let high: Double
        public let workDir: String
    }

    /// One collected result (nil `miou`: the run is missing or has no evaluation yet).
    public struct Result: Sendable {
        public let point: Point
        public let miou: Double?
        public let step: Double?
        public let domains: [String: Double]
        /// Why there is no score (missing directory, no metrics.jsonl, no evaluation).
        public let note: String?
    }

    /// A cut-off as printed in names, labels and the CSV: `%g` of the value rounded to 3 decimals.
    public static func format(_ v: Double) -> String {
        String(format: "%g", (v * 1000).rounded() / 1000)
    }

    /// Parses a comma-separated list of cut-offs in (0, ∞), e.g. `0.1,0.2,0.3`.
    public static func parseList(_ s: String, name: String) throws -> [Double] {
        let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty else { throw CausalTuneError("--\(name): empty list (expected e.g. 0.1,0.2,0.3)") }
        return try parts.map { p in
            guard let v = Double(p), v.isFinite, v > 0 else {
                throw CausalTuneError("--\(name): '\(p)' is not a positive number (expected e.g. 0.1,0.2,0.3)")
            }
            return v
        }
    }

    /// The work directory name of a point.
    public static func workDirName(low: Double, high: Double) -> String { "low\(format(low))_high\(format(high))" }

    /// The valid points of the grid (`low < high`), row-major over `lows` × `highs`.
    public static func points(lows: [Double], highs: [Double], root: String) -> [Point] {
        var out: [Point] = []
        for l in lows {
            for h in highs where l < h {
                out.append(Point(low: l, high: h, workDir: (root as NSString).appendingPathComponent(workDirName(low: l, high: h))))
            }
        }
        return out
    }

    /// Reads each point's final mean mIoU over the domains not in `excluded`.
    public static func collect(_ points: [Point], excluding excluded: Set<String> = ["source"]) -> [Result] {
        points.map { p in
            do {
                let m = try TrainingMetrics.load(workDir: p.workDir)
                guard let f = m.finalMIoU(excluding: excluded) else {
                    let why = m.domains.isEmpty ? "no evaluation in metrics.jsonl yet"
                        : "no evaluated domain besides \(excluded.sorted().joined(separator: ", "))"
                    return Result(point: p, miou: nil, step: nil, domains: [:], note: "\(p.workDir): \(why)")
                }
                return Result(point: p, miou: f.miou, step: f.step, domains: f.domains, note: nil)
            } catch let e as CausalTuneError {
                return Result(point: p, miou: nil, step: nil, domains: [:], note: e.message)
            } catch {
                return Result(point: p, miou: nil, step: nil, domains: [:], note: "\(p.workDir): \(error)")
            }
        }
    }

    /// The CSV table: `low,high,mean_miou,step,<domain>...,work_dir`, one row per point
    /// (empty fields where missing), mIoU as fractions at full precision.
    public static func csv(_ results: [Result]) -> String {
        let domains = Array(Set(results.flatMap { $0.domains.keys })).sorted()
        var lines = [(["low", "high", "mean_miou", "step"] + domains + ["work_dir"]).joined(separator: ",")]
        for r in results {
            var f = [format(r.point.low), format(r.point.high), r.miou.map { "\($0)" } ?? "", r.step.map { String(Int($0)) } ?? ""]
            f += domains.map { d in r.domains[d].map { "\($0)" } ?? "" }
            f.append(r.point.workDir.contains(",") ? "\"\(r.point.workDir)\"" : r.point.workDir)
            lines.append(f.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The accuracy matrix: rows `lows`, columns `highs`, cell = mean mIoU in percent with
    /// one decimal (nil where not run or invalid).
    public static func heatMap(_ results: [Result], lows: [Double], highs: [Double], title: String = "mean mIoU (%) over target domains") -> HeatMap {
        var values = [[Double?]](repeating: [Double?](repeating: nil, count: highs.count), count: lows.count)
        for r in results {
            guard let i = lows.firstIndex(of: r.point.low), let j = highs.firstIndex(of: r.point.high) else { continue }
            values[i][j] = r.miou
        }
        return HeatMap(title: title, rowTitle: "filter.low (σ_L)", columnTitle: "filter.high (σ_H)",
                       rowLabels: lows.map(format), columnLabels: highs.map(format), values: values,
                       cellText: { String(format: "%.1f", 100 * $0) })
    }
}
