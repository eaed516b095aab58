import Core
import Data
import Evaluation
import Foundation
import Heads
import Numerics
import RunIO

/// The loop of `Trainer`: each update (`trainStep`), its metrics line, and what follows
/// every update (`afterStep`: evaluation, best-score bookkeeping, checkpoints, feature dumps).
extension Trainer {
    /// Trains from `step` to `train.iters`; returns the last evaluation report. A failure
    /// is also recorded at the end of `train.log` before it is rethrown.
    @discardableResult
    public func run() throws -> EvaluationReport? {
        do {
            return try trainSteps()
        } catch {
            log.recordInFile("causal-tune: \(error)")
            throw error
        }
    }

    private func trainSteps() throws -> EvaluationReport? {
        let t = config.train
        if comm.isRoot {
            try AtomicFile.write(config.yaml, to: workDir + "/config.yaml")
            log.info("causal-tune train: \(config.model.backbone.arch) + \(config.model.peft.method.rawValue) + \(network.head.type) head, \(parameters.count) trainable values in \(parameters.entries.count) tensors, world \(comm.size), batch \(t.batchSize), \(t.iters) iterations, work dir \(workDir)")
            log.info(network.trainableSummary)
        }
        let trainSet = try openDataset(config.data.train)
        let valSets = try Trainer.validationDomains(config, log: log).map { try openDataset($0) }
        let crop = config.data.cropSize
        guard crop == network.inputSize else {
            throw CausalTuneError("data.crop_size: \(crop) must equal model.backbone.image_size (\(network.inputSize)): the network input is the crop")
        }
        var pipe = PipelineOptions.reference(for: trainSet, crop: crop, augment: config.data.augment == .full)
        pipe.cropWidth = crop; pipe.cropHeight = crop
        pipe.normalization = config.model.backbone.normalization
        let sampler = ShardedSampler(datasetCount: trainSet.count, batchSize: t.batchSize, seed: UInt64(t.seed),
                                     rank: comm.rank, worldSize: comm.size)
        let loader = BatchLoader(dataset: trainSet, options: pipe, sampler: sampler, startStep: step)
        defer { loader.stop() }
        let slotSum = SlotGradientSum(globalBatch: t.batchSize, count: parameters.count, communicator: comm)

        try checkFeatureDumpInputs()
        let firstStep = step, skippedBefore = skipped
        let progress: RunIO.Progress? = comm.isRoot && !options.quiet ? RunIO.Progress(label: "train", total: t.iters, startingAt: step) : nil
        var window = LogWindow()
        while step < t.iters {
            if let update = try trainStep(loader: loader, slotSum: slotSum, crop: crop) {
                window.add(update)
                progress?.update(to: step, extra: String(format: "loss %.4f  lr %.3g", update.loss, update.lr))
                if step % t.logEvery == 0 || step == t.iters {
                    try writeMetrics(window, last: update)
                    window = LogWindow()
                }
            } else {
                progress?.update(to: step, extra: "step skipped (non-finite)")
            }
            try afterStep(valSets)   // also after a skipped step: its scheduled evaluation and checkpoint still happen
        }
        progress?.finish()
        let attempted = step - firstStep
        if attempted > 0 && skipped - skippedBefore == attempted {
            throw CausalTuneError("all \(attempted) steps of this run were skipped as non-finite (train.skip_nonfinite): nothing was trained; the last checkpoint is \(lastCheckpoint ?? "none") — lower train.lr or check the data")
        }
        return lastReport
    }

    /// Update `step` (see `Trainer`), then `step` + 1. Returns nil when the loss or gradient
    /// was not finite and `train.skip_nonfinite` skipped the update; without it that is an error.
    private func trainStep(loader: BatchLoader, slotSum: SlotGradientSum, crop: Int) throws -> UpdateResult? {
        let t = config.train
        let k = step
        let t0 = Date()
        let batch = try loader.next()
        let b = batch.images.shape[0]
        let labels = LabelBatch(batch: b, height: crop, width: crop, values: batch.labels)
        let t1 = Date()
        let localValid = network.head.lossNormalizer(labels: labels)
        let globalValid = Int(comm.allReduceSum(Int64(localValid)))
        slotSum.begin()
        let imageTimings = network.accumulateImageGradients(
            images: batch.images, labels: labels, normalizer: globalValid,
            pointSeeds: Trainer.pointSeeds(rngState: rng.state, step: k, slots: batch.slots),
            parameters: parameters, into: slotSum)
        let t2 = Date()
        let lossSum = slotSum.finish(into: parameters.grads)
        let loss = globalValid > 0 ? lossSum / Double(globalValid) : 0
        let t3 = Date()
        let finite = loss.isFinite && ParameterSet.allFinite(parameters.grads)
        if !finite {
            if t.skipNonfinite {
                skipped += 1
                log.warning("step \(k + 1): non-finite loss or gradient, step skipped (\(skipped) so far; train.skip_nonfinite)")
                step += 1
                return nil
            }
            let last = lastCheckpoint.map { "; the last good checkpoint is \($0)" } ?? "; no checkpoint was written yet"
            throw CausalTuneError("step \(k + 1): non-finite \(loss.isFinite ? "gradient" : "loss (\(loss))") — training stopped (set train.skip_nonfinite: true to skip such steps, or lower train.lr)\(last)")
        }
        var gradNorm: Double? = nil
        if let clip = t.gradClip { gradNorm = GradientClipping.clip(parameters.grads, maxNorm: clip) }
        let lr = schedule.rate(at: k)
        optimizer.step(lr: lr)
        parameters.scatterValues()
        let t4 = Date()
        step += 1
        let timings = PhaseTimings(data: t1.timeIntervalSince(t0), forward: imageTimings.forward,
                                   backward: t2.timeIntervalSince(t1) - imageTimings.forward,
                                   allreduce: t3.timeIntervalSince(t2), optimizer: t4.timeIntervalSince(t3),
                                   total: t4.timeIntervalSince(t0))
        return UpdateResult(loss: loss, lr: lr, gradNorm: gradNorm, timings: timings)
    }

    /// The metrics line (and log line) of the updates in `window`: means over them; the
    /// learning rate and gradient norm are those of the `last` update.
    private func writeMetrics(_ window: LogWindow, last: UpdateResult) throws {
        guard comm.isRoot else { return }
        let t = config.train
        let n = Double(max(window.count, 1))
        let sum = window.timings
        var fields: [(String, JSONValue)] = [
            ("step", .int(step)), ("loss", .double(window.loss / n)), ("lr", .double(last.lr)),
            ("step_s", .double(sum.total / n)),
            ("split_s", .object([("data", .double(sum.data / n)), ("forward", .double(sum.forward / n)),
                                 ("backward", .double(sum.backward / n)),
                                 ("allreduce", .double(sum.allreduce / n)),
                                 ("optimizer", .double(sum.optimizer / n))])),
            ("images_per_s", .double(Double(t.batchSize) * n / max(sum.total, 1e-9))),
            ("skipped", .int(skipped)),
        ]
        if let g = last.gradNorm { fields.append(("grad_norm", .double(g))) }
        try metrics?.write(object: fields)
        log.info(String(format: "step %d/%d  loss %.4f  lr %.3e  %.3f s/step (data %.3f, forward %.3f, backward %.3f, allreduce %.3f, optimizer %.3f)",
                        step, t.iters, window.loss / n, last.lr, sum.total / n, sum.data / n, sum.forward / n,
                        sum.backward / n, sum.allreduce / n, sum.optimizer / n))
    }

    /// What follows update `step` (taken or skipped): the scheduled evaluation, then the
    /// best-score bookkeeping, then the checkpoint — so a checkpoint written at an evaluation
    /// step records the best score *including* that evaluation, and a resume from it never
    /// lets a worse model replace best.h5 — then best.h5 and the feature dump.
    private func afterStep(_ valSets: [Dataset]) throws {
        let t = config.train
        let last = step == t.iters
        var report: EvaluationReport? = nil
        if !valSets.isEmpty && ((t.evalEvery > 0 && step % t.evalEvery == 0) || last) {
            report = try evaluateAndLog(valSets)
        }
        var improved: Double? = nil
        if let r = report, let m = r.meanMIoU, m.isFinite, bestMIoU.map({ m > $0 }) ?? true {
            bestMIoU = m
            bestStep = step
            improved = m
        }
        if (t.checkpointEvery > 0 && step % t.checkpointEvery == 0) || last {
            try saveCheckpoint(miou: report?.meanMIoU)
        }
        if let m = improved, comm.isRoot {
            try writeCheckpoint(to: workDir + "/best.h5", extra: ["miou": m])
            log.info(String(format: "new best mean mIoU %.2f at step %d → %@/best.h5", m * 100, step, workDir))
        }
        let dump = config.output.dumpFeatures
        if dump.every > 0 && step % dump.every == 0 && !dump.images.isEmpty {
            try dumpFeatures(step: step)
        }
    }

    private func evaluateAndLog(_ sets: [Dataset]) throws -> EvaluationReport {
        let start = Date()
        let report = try evaluate(datasets: sets)
        lastReport = report
        if comm.isRoot {
            log.info("evaluation at step \(step) (\(String(format: "%.1f", Date().timeIntervalSince(start))) s):\n" + report.table)
            try AtomicFile.write(report.json + "\n", to: workDir + "/eval_iter_\(step).json")
            var fields: [(String, JSONValue)] = [("step", .int(step)), ("mean_miou", .number(report.meanMIoU))]
            fields.append(("miou", .object(report.domains.map { ($0.name, JSONValue.number($0.metrics.miou)) })))
            try metrics?.write(object: fields)
        }
        return report
    }
}
