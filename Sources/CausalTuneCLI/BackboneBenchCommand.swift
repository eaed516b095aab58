import ArgumentParser
import Backbone
import Data
import Foundation
import Numerics
import Core

/// `causal-tune backbone-bench` (hidden): times the frozen backbone alone — forward and
/// frozen backward with random weights — and reports the process's peak resident memory.
/// Run one configuration per process so that the peak belongs to it. CPU seconds (user +
/// system, all threads) per phase are reported too: on a shared machine they show what the
/// work costs when wall time does not.
struct BackboneBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backbone-bench",
        abstract: "Time the frozen backbone forward and backward (random weights).",
        shouldDisplay: false
    )

    @Option(help: "Architecture (dinov2_vits14, …).") var arch = "dinov2_vits14"
    @Option(name: .customLong("image-size"), help: "Square input size.") var imageSize = 224
    @Option(name: .customLong("patch-size"), help: "Patch size.") var patchSize = 14
    @Option(help: "Batch size.") var batch = 2
    @Option(help: "Timed repetitions (the median is reported).") var steps = 2
    @Flag(help: "Recompute block activations in the backward.") var recompute = false
    @Flag(help: "Forward only.") var forwardOnly = false

    func run() throws {
        let architecture = try BackboneArchitecture.named(arch)
        let model = VisionTransformer(architecture: architecture, imageSize: imageSize, patchSize: patchSize, recompute: recompute)
        model.randomize(seed: 0)
        let images = Tensor(zeros: [batch, 3, imageSize, imageSize])
        var rng = RandomGenerator(seed: 1)
        rng.fillNormal(images)
        let gradient = Tensor(zeros: [batch, model.tokenCount, architecture.channels])
        rng.fillNormal(gradient)
        var forwardTimes: [Double] = [], backwardTimes: [Double] = []
        var forwardCPU: [Double] = [], backwardCPU: [Double] = []
        for _ in 0..<max(1, steps) {
            let c0 = BackboneBenchCommand.cpuSeconds(), t0 = DispatchTime.now().uptimeNanoseconds
            model.forward(images)
            let c1 = BackboneBenchCommand.cpuSeconds(), t1 = DispatchTime.now().uptimeNanoseconds
            if !forwardOnly { model.backward(outputGradients: [architecture.depth - 1: gradient]) }
            let c2 = BackboneBenchCommand.cpuSeconds(), t2 = DispatchTime.now().uptimeNanoseconds
            forwardTimes.append(Double(t1 - t0) / 1e9)
            backwardTimes.append(Double(t2 - t1) / 1e9)
            forwardCPU.append(c1 - c0)
            backwardCPU.append(c2 - c1)
        }
        let median = { (v: [Double]) -> Double in v.sorted()[v.count / 2] }
        let result: [String: JSONValue] = [
            "arch": .string(arch), "image_size": .int(imageSize), "patch_size": .int(patchSize), "batch": .int(batch),
            "recompute": .bool(recompute), "tokens": .int(model.tokenCount), "forward_s": .double(median(forwardTimes)),
            "backward_s": .double(forwardOnly ? 0 : median(backwardTimes)),
            "peak_rss_mb": .double(BackboneBenchCommand.peakRSSMegabytes()),
            "threads": .int(Parallel.threads), "forward_cpu_s": .double(median(forwardCPU)),
            "backward_cpu_s": .double(forwardOnly ? 0 : median(backwardCPU)),
        ]
        print(JSONValue.object(result.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }).text)
    }

    /// User + system CPU time of this process so far (to judge a loaded machine).
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// VmHWM from /proc/self/status (Linux), in MiB; 0 where unavailable.
    static func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}
