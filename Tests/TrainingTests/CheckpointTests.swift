import Core
import Foundation
import HDF5
import Numerics
import Training
import XCTest

final class CheckpointTests: XCTestCase {
    private var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "ct-ckpt-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    private let signature = ModelSignature(arch: "dinov2_vits14", embedDim: 4, depth: 2, peftMethod: "causal_tune",
                                           tokens: 3, loraRank: nil, headType: "linear", outIndices: [0, 1], numClasses: 19)

    private func makeSet(seed: UInt64) -> ParameterSet {
        var rng = RandomGenerator(seed: seed)
        let specs: [(String, [Int])] = [("peft/tokens", [2, 3, 4]), ("peft/scale", [1]), ("head/linear/weight", [19, 8])]
        return ParameterSet(specs.map { (n, s) -> (name: String, value: Tensor, grad: Tensor) in
            let v = Tensor(zeros: s); rng.fillNormal(v)
            return (name: n, value: v, grad: Tensor(zeros: s))
        })
    }

    private func metadata(step: Int, signature: ModelSignature? = nil) -> Checkpoint.Metadata {
        Checkpoint.Metadata(step: step, worldSize: 2, config: "train: {iters: 10}\n", rngState: [1, 2, 3, 4],
                            optimizer: "adamw", backboneWeights: "random", backboneSHA256: "",
                            signature: signature ?? self.signature)
    }

    func testWriteThenReadRestoresParametersMomentsStepAndRNG() throws {
        let set = makeSet(seed: 1)
        let opt = Optimizer(.adamw, parameters: set)
        set.grads.fill(0.25)
        opt.step(lr: 1e-3)
        opt.step(lr: 1e-3)
        let path = dir + "/iter_2.h5"
        try Checkpoint.write(to: path, metadata: metadata(step: 2), parameters: set, optimizer: opt)

        let other = makeSet(seed: 99)
        let opt2 = Optimizer(.adamw, parameters: other)
        let reader = try Checkpoint.Reader(path: path)
        try reader.requireCompatible(with: signature)
        try reader.loadParameters(into: other)
        try reader.loadOptimizer(into: opt2)
        XCTAssertEqual(other.values.array, set.values.array)
        XCTAssertEqual(opt2.expAvg.array, opt.expAvg.array)
        XCTAssertEqual(opt2.expAvgSq.array, opt.expAvgSq.array)
        XCTAssertEqual(opt2.stepCount, 2)
        XCTAssertEqual(reader.metadata.rngState, [1, 2, 3, 4])
        XCTAssertEqual(reader.metadata.worldSize, 2)
        XCTAssertEqual(reader.metadata.config, "train: {iters: 10}\n")
        // The module tensors received the values too.
        XCTAssertEqual(other["peft/scale"]!.moduleValue.array, set["peft/scale"]!.value.array)

        // reference §Files layout, readable without our reader.
        let file = try HDF5File.open(path)
        XCTAssertEqual(try file.stringAttribute("format"), "causal-tune-checkpoint")
        XCTAssertEqual(try file.int64Attribute("version"), 1)
        XCTAssertEqual(try file.datasetInfo("params/peft/tokens").shape, [2, 3, 4])
        XCTAssertTrue(file.isDataset("optimizer/exp_avg/head/linear/weight"))
        XCTAssertTrue(file.isDataset("optimizer/exp_avg_sq/peft/scale"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: AtomicFile.temporaryPath(for: path)))
    }

    func testDifferentModelIsRefusedNamingTheField() throws {
        let path = dir + "/a.h5"
        try Checkpoint.write(to: path, metadata: metadata(step: 1), parameters: makeSet(seed: 1), optimizer: nil)
        var other = signature
        other.outIndices = [1]
        let reader = try Checkpoint.Reader(path: path)
        XCTAssertThrowsError(try reader.requireCompatible(with: other)) { error in
            let m = (error as? CausalTuneError)?.message ?? ""
            XCTAssertTrue(m.contains("model.head.out_indices"), m)
        }
    }

    func testTruncatedCheckpointGivesOneClearError() throws {
        let path = dir + "/t.h5"
        try Checkpoint.write(to: path, metadata: metadata(step: 1), parameters: makeSet(seed: 1), optimizer: nil)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try { let r = try Checkpoint.Reader(path: path); try r.loadParameters(into: self.makeSet(seed: 2)) }()) { error in
            guard let e = error as? CausalTuneError else { return XCTFail("not a CausalTuneError: \(error)") }
            XCTAssertTrue(e.message.contains(path), e.message)
            XCTAssertFalse(e.message.contains("\n"), e.message)
        }
    }

    func testNotACheckpointIsRefused() throws {
        let path = dir + "/x.h5"
        let f = try HDF5File.create(path)
        try f.setAttribute("format", .string("causal-tune-features"))
        try f.close()
        XCTAssertThrowsError(try Checkpoint.Reader(path: path)) { error in
            XCTAssertTrue(((error as? CausalTuneError)?.message ?? "").contains("not a causal-tune checkpoint"))
        }
    }
}
