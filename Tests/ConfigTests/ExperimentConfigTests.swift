import Config
import Core
import Foundation
import Training
import XCTest

final class ExperimentConfigTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("config-tests-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("_base_"),
                                                withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func assertError(_ body: @autoclosure () throws -> Any, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual("\(error)", expected, file: file, line: line)
            XCTAssertTrue(error is CausalTuneError, file: file, line: line)
        }
    }

    func testEveryKeyHasTheSpecDefault() throws {
        let path = try write("minimal.yaml", "model:\n  backbone: {weights: random}\n")
        let c = try ExperimentConfig.load(path: path)
        XCTAssertEqual(c.model.backbone.arch, "dinov2_vitl14")
        XCTAssertEqual(c.model.backbone.weights, "random")
        XCTAssertTrue(c.model.backbone.randomWeights)
        XCTAssertEqual(c.model.backbone.imageSize, 512)
        XCTAssertEqual(c.model.backbone.patchSize, 14)
        XCTAssertFalse(c.model.backbone.recompute)
        XCTAssertEqual(c.model.peft.method, .causalTune)
        XCTAssertEqual(c.model.peft.tokens, 100)
        XCTAssertNil(c.model.peft.loraRank)
        XCTAssertEqual(c.model.peft.scaleInit, 0.001)
        XCTAssertEqual(c.model.peft.transform, .dct)
        XCTAssertFalse(c.model.peft.discardNoncausal)
        XCTAssertEqual(c.model.peft.filter.mode, .bandpass)
        XCTAssertEqual(c.model.peft.filter.shape, .gaussian)
        XCTAssertEqual(c.model.peft.filter.low, 0.2)
        XCTAssertEqual(c.model.peft.filter.high, 0.7)
        XCTAssertEqual(c.model.head.type, .linear)
        XCTAssertNil(c.model.head.outIndices)
        XCTAssertEqual(c.model.head.numClasses, 19)
        XCTAssertEqual(c.data.train.dataset, .gta5)
        XCTAssertEqual(c.data.train.split, "train")
        XCTAssertEqual(c.data.val.count, 1)
        XCTAssertEqual(c.data.val[0].dataset, .cityscapes)
        XCTAssertEqual(c.data.val[0].split, "val")
        XCTAssertEqual(c.data.val[0].displayName, "citys")
        XCTAssertEqual(c.data.cropSize, 512)
        XCTAssertEqual(c.data.augment, .full)
        XCTAssertEqual(c.train.seed, 0)
        XCTAssertEqual(c.train.iters, 40000)
        XCTAssertEqual(c.train.batchSize, 4)
        XCTAssertEqual(c.train.optimizer, .adamw)
        XCTAssertEqual(c.train.lr, 1e-4)
        XCTAssertEqual(c.train.weightDecay, 0.05)
        XCTAssertEqual(c.train.betas, [0.9, 0.999])
        XCTAssertEqual(c.train.eps, 1e-8)
        XCTAssertEqual(c.train.schedule, .poly)
        XCTAssertEqual(c.train.polyPower, 0.9)
        XCTAssertNil(c.train.gradClip)
        XCTAssertEqual(c.train.logEvery, 50)
        XCTAssertEqual(c.train.evalEvery, 10000)
        XCTAssertEqual(c.train.checkpointEvery, 4000)
        XCTAssertEqual(c.train.keep, 3)
        XCTAssertFalse(c.train.skipNonfinite)
        XCTAssertEqual(c.output.workDir, "runs/minimal")
        XCTAssertEqual(c.output.dumpFeatures.every, 0)
        XCTAssertEqual(c.output.dumpFeatures.images, [])
        XCTAssertEqual(c.output.dumpFeatures.layers, [])
        XCTAssertEqual(c.value(at: "model.head.num_classes"), .int(19))
        XCTAssertEqual(c.value(at: "data.val[0].root"), .string("data/cityscapes"))
    }

    func testBaseFilesMergeFirstRecursivelyAndListsAreReplaced() throws {
        try write("_base_/model.yaml", """
            model:
              backbone: {arch: dinov2_vits14, weights: random, image_size: 224}
              peft: {tokens: 10, filter: {low: 0.1}}
            train: {iters: 100, betas: [0.5, 0.6]}
            """)
        try write("_base_/data.yaml", """
            _base_: model.yaml
            data:
              train: {dataset: synthetic, root: data/synth, domain: source}
              val:
                - {dataset: synthetic, root: data/synth, domain: fog}
                - {dataset: synthetic, root: data/synth, domain: night, name: dark}
            train: {iters: 200}
            """)
        let path = try write("exp.yaml", """
            _base_: [_base_/data.yaml]
            model:
              peft: {filter: {high: 0.9}}
            data:
              val:
                - {dataset: acdc, root: data/acdc, condition: snow}
            train: {betas: [0.8, 0.99]}
            """)
        let c = try ExperimentConfig.load(path: path)
        XCTAssertEqual(c.model.backbone.arch, "dinov2_vits14")        // from model.yaml
        XCTAssertEqual(c.model.backbone.imageSize, 224)
        XCTAssertEqual(c.model.peft.tokens, 10)
        XCTAssertEqual(c.model.peft.filter.low, 0.1)                  // deep merge keeps the base's key
        XCTAssertEqual(c.model.peft.filter.high, 0.9)                 // and takes this file's
        XCTAssertEqual(c.model.peft.filter.mode, .bandpass)           // default
        XCTAssertEqual(c.train.iters, 200)                            // data.yaml over model.yaml
        XCTAssertEqual(c.train.betas, [0.8, 0.99])                    // list replaced
        XCTAssertEqual(c.data.train.dataset, .synthetic)
        XCTAssertEqual(c.data.train.domain, "source")
        XCTAssertEqual(c.data.val.count, 1)                           // list replaced, not appended
        XCTAssertEqual(c.data.val[0].dataset, .acdc)
        XCTAssertEqual(c.data.val[0].split, "val")                    // item default
        XCTAssertEqual(c.data.val[0].displayName, "acdc_snow")
        XCTAssertEqual(c.output.workDir, "runs/exp")
    }

    func testSetOverridesAnyKeyWithAYAMLValue() throws {
        let path = try write("exp.yaml", "model:\n  backbone: {weights: w.pth}\ndata:\n  val: [{dataset: cityscapes, root: a}, {dataset: bdd100k, root: b}]\n")
        let c = try ExperimentConfig.load(path: path, overrides: [
            "train.lr=3e-4", "train.grad_clip=1", "model.head.out_indices=[3, 7]", "model.peft.transform=fft",
            "data.val[1].root=/data/bdd", "data.val.0.name=cs", "model.backbone.weights=random",
            "output.work_dir=runs/x y", "model.peft.lora_rank=8", "train.skip_nonfinite=true",
            "output.dump_features={every: 5, images: [a.png], layers: [0, 11]}",
        ])
        XCTAssertEqual(c.train.lr, 3e-4)
        XCTAssertEqual(c.train.gradClip, 1.0)
        XCTAssertEqual(c.model.head.outIndices, [3, 7])
        XCTAssertEqual(c.model.peft.transform, .fft)
        XCTAssertEqual(c.data.val[1].root, "/data/bdd")
        XCTAssertEqual(c.data.val[0].displayName, "cs")
        XCTAssertEqual(c.data.val[1].displayName, "bdd100k")
        XCTAssertEqual(c.model.backbone.weights, "random")
        XCTAssertEqual(c.output.workDir, "runs/x y")
        XCTAssertEqual(c.model.peft.loraRank, 8)
        XCTAssertTrue(c.train.skipNonfinite)
        XCTAssertEqual(c.output.dumpFeatures.every, 5)
        XCTAssertEqual(c.output.dumpFeatures.images, ["a.png"])
        XCTAssertEqual(c.output.dumpFeatures.layers, [0, 11])
        // Back to null, and overriding an existing config.
        let d = try c.overriding(["model.peft.lora_rank=null", "train.grad_clip=null"])
        XCTAssertNil(d.model.peft.loraRank)
        XCTAssertNil(d.train.gradClip)
        XCTAssertEqual(d.train.lr, 3e-4)
    }

    func testUnknownKeysAreOneErrorNamingTheKeyPathAndFile() throws {
        let path = try write("x.yaml", "model:\n  backbone: {weights: random}\ntrain:\n  lrr: 0.1\n")
        XCTAssertThrowsError(try ExperimentConfig.load(path: path)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("unknown config key 'train.lrr' in \(path) (known here: seed, iters,"), message)
            XCTAssertFalse(message.contains("\n"))
        }
        let base = try write("_base_/bad.yaml", "model:\n  peft: {filtr: {low: 0.1}}\n")
        let top = try write("top.yaml", "_base_: _base_/bad.yaml\nmodel:\n  backbone: {weights: random}\n")
        XCTAssertThrowsError(try ExperimentConfig.load(path: top)) { error in
            XCTAssertTrue("\(error)".hasPrefix("unknown config key 'model.peft.filtr' in \(base)"), "\(error)")
        }
        let good = try write("good.yaml", "model:\n  backbone: {weights: random}\n")
        XCTAssertThrowsError(try ExperimentConfig.load(path: good, overrides: ["train.lrr=1"])) { error in
            XCTAssertTrue("\(error)".hasPrefix("unknown config key 'train.lrr' in --set train.lrr=1"), "\(error)")
        }
        XCTAssertThrowsError(try ExperimentConfig.load(path: good, overrides: ["data.val[0].colour=red"])) { error in
            XCTAssertTrue("\(error)".hasPrefix("unknown config key 'data.val[0].colour' in --set"), "\(error)")
        }
    }

    func testBadValuesAreOneErrorNamingTheKeyPath() throws {
        let good = try write("good.yaml", "model:\n  backbone: {weights: random}\n")
        let cases: [(String, String)] = [
            ("model.peft.transform=fftt", "config key 'model.peft.transform' must be one of dct|fft|haar|identity, got 'fftt' in --set model.peft.transform=fftt"),
            ("model.peft.filter.mode=band", "config key 'model.peft.filter.mode' must be one of bandpass|lowcut|highcut|none, got 'band' in --set model.peft.filter.mode=band"),
            ("model.peft.filter.shape=box", "config key 'model.peft.filter.shape' must be one of gaussian|ideal, got 'box' in --set model.peft.filter.shape=box"),
            ("model.peft.method=lora", "config key 'model.peft.method' must be one of causal_tune|rein|none, got 'lora' in --set model.peft.method=lora"),
            ("train.optimizer=adam", "config key 'train.optimizer' must be one of adamw|sgd, got 'adam' in --set train.optimizer=adam"),
            ("data.augment=some", "config key 'data.augment' must be one of full|none, got 'some' in --set data.augment=some"),
            ("data.train.dataset=kitti", "config key 'data.train.dataset' must be one of gta5|cityscapes|bdd100k|mapillary|acdc|synthetic|folder, got 'kitti' in --set data.train.dataset=kitti"),
            ("model.head.type=fcn", "config key 'model.head.type' must be one of linear|mask2former, got 'fcn' in --set model.head.type=fcn"),
            ("train.iters=ten", "config key 'train.iters' must be an integer, got 'ten' in --set train.iters=ten"),
            ("train.iters=0", "config key 'train.iters' must be at least 1, got 0 in --set train.iters=0"),
            ("train.lr=0", "config key 'train.lr' must be greater than 0.0, got 0.0 in --set train.lr=0"),
            ("train.betas=[0.9]", "config key 'train.betas' must have 2 entries, got 1 in --set train.betas=[0.9]"),
            ("train.skip_nonfinite=maybe", "config key 'train.skip_nonfinite' must be true or false, got 'maybe' in --set train.skip_nonfinite=maybe"),
            ("model.backbone.weights=null", "missing required config key 'model.backbone.weights' in --set model.backbone.weights=null"),
            ("data.val[0].condition=night", "config key 'data.val[0].condition' applies only to dataset acdc (this is cityscapes) in --set data.val[0].condition=night"),
            ("data.val[3].root=x", "config key 'data.val[3].root': index 3 is outside the list (1 items) in --set data.val[3].root=x"),
            ("model.peft.filter.low=0.8", "config keys 'model.peft.filter.low' (0.8) and 'model.peft.filter.high' (0.7): low must be below high in --set model.peft.filter.low=0.8"),
            ("train", "--set train: expected key.path=value"),
        ]
        for (override, expected) in cases {
            assertError(try ExperimentConfig.load(path: good, overrides: [override]), expected)
        }
        let missing = try write("missing.yaml", "train: {iters: 5}\n")
        assertError(try ExperimentConfig.load(path: missing), "missing required config key 'model.backbone.weights' in \(missing)")
        let syntax = try write("syntax.yaml", "model: [unclosed\n")
        XCTAssertThrowsError(try ExperimentConfig.load(path: syntax)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(syntax): invalid YAML: "), "\(error)")
        }
        let nothere = directory.appendingPathComponent("nothere.yaml").path
        assertError(try ExperimentConfig.load(path: nothere), "\(nothere): no such config file")
        let acdc = try write("acdc.yaml", "model: {backbone: {weights: random}}\ndata: {val: [{dataset: acdc, condition: dusk}]}\n")
        assertError(try ExperimentConfig.load(path: acdc), "config key 'data.val[0].condition' must be one of fog|night|rain|snow, got 'dusk' in \(acdc)")
        let noDataset = try write("nodataset.yaml", "model: {backbone: {weights: random}}\ndata: {val: [{root: x}]}\n")
        assertError(try ExperimentConfig.load(path: noDataset), "missing required config key 'data.val[0].dataset' in \(noDataset)")
        let cycleA = try write("a.yaml", "_base_: b.yaml\n")
        try write("b.yaml", "_base_: a.yaml\n")
        XCTAssertThrowsError(try ExperimentConfig.load(path: cycleA)) { error in
            XCTAssertTrue("\(error)".contains("_base_ cycle"), "\(error)")
        }
    }

    /// The config records which keys the files and `--set` wrote, so "left at the default"
    /// and "set to the default's value" differ (a run warns only for the first).
    func testTheConfigRecordsWhichKeysWereSet() throws {
        try write("_base_/data.yaml", "data:\n  val:\n    - {dataset: cityscapes, root: data/cityscapes, name: citys}\n")
        let minimal = try ExperimentConfig.load(path: try write("minimal.yaml", "model:\n  backbone: {weights: random}\n"))
        XCTAssertTrue(minimal.isSet("model.backbone.weights"))
        XCTAssertTrue(minimal.isSet("model.backbone"))
        XCTAssertFalse(minimal.isSet("model.backbone.arch"))
        XCTAssertFalse(minimal.isSet("data.val"))
        XCTAssertFalse(minimal.isSet("data"))

        let viaBase = try ExperimentConfig.load(path: try write("viabase.yaml", "_base_: [_base_/data.yaml]\nmodel:\n  backbone: {weights: random}\n"))
        XCTAssertEqual(viaBase.data.val, minimal.data.val, "the base writes the default's value")
        XCTAssertTrue(viaBase.isSet("data.val"), "a _base_ file's keys count as set")

        let viaSet = try minimal.overriding(["data.val[0].root=data/cityscapes"])
        XCTAssertEqual(viaSet.data.val, minimal.data.val)
        XCTAssertTrue(viaSet.isSet("data.val"))
        XCTAssertFalse(viaSet.isSet("data.train"))
    }

    func testResolvedYAMLReloadsToAnIdenticalConfig() throws {
        let path = try write("exp.yaml", """
            model:
              backbone: {arch: dinov2_vits14, weights: "/weights/dino v2: small.pth"}
              peft: {lora_rank: 4, transform: haar, scale_init: 1e-3}
              head: {out_indices: [2, 5, 8, 11]}
            data:
              train: {dataset: folder, root: "123", split: "null"}
              val:
                - {dataset: synthetic, root: data/synth, domain: fog, name: "fog # 1"}
                - {dataset: mapillary, root: 'data/map''s', split: "true"}
            train: {eps: 1.0e-8, lr: 0.00006, grad_clip: 3, betas: [0.9, 0.999]}
            output: {dump_features: {images: ["a b.png", "ü.png"], layers: [0]}}
            """)
        let c = try ExperimentConfig.load(path: path)
        XCTAssertEqual(c.data.train.root, "123")
        XCTAssertEqual(c.data.train.split, "null")
        XCTAssertEqual(c.data.val[1].root, "data/map's")
        let text = c.yaml
        let again = try ExperimentConfig.parse(yaml: text)
        XCTAssertEqual(again, c)
        XCTAssertEqual(again.yaml, text)
        // Every key is written, in schema order, floats with a dot.
        XCTAssertTrue(text.hasPrefix("model:\n  backbone:\n    arch: dinov2_vits14\n    weights: \"/weights/dino v2: small.pth\"\n"), text)
        XCTAssertTrue(text.contains("\n  eps: 1.0e-08\n"), text)
        XCTAssertTrue(text.contains("    lora_rank: 4\n"), text)
        XCTAssertTrue(text.contains("\n  grad_clip: 3.0\n"), text)
        XCTAssertTrue(text.contains("  val:\n  - dataset: synthetic\n    root: data/synth\n"), text)
        XCTAssertTrue(text.contains("  work_dir: runs/exp\n"), text)
        let defaults = try ExperimentConfig.parse(yaml: "model: {backbone: {weights: random}}")
        XCTAssertEqual(try ExperimentConfig.parse(yaml: defaults.yaml), defaults)
        XCTAssertTrue(defaults.yaml.contains("    lora_rank: null\n"), defaults.yaml)
        XCTAssertTrue(defaults.yaml.contains("    out_indices: null\n"), defaults.yaml)
    }

    func testYAMLOfAwkwardValuesReadsBackEqual() throws {
        let strings = ["", "~", "null", "yes", "no", "1e-4", "0x1F", "-x", "- x", "#x", "a #b", "x: y", "[x]", "{x}",
                       "'q'", "\"dq\"", "a\nb", "tab\there", "back\\slash", "é ü", "ok_name/file.png", " lead", "trail "]
        let value = ConfigValue.map(ConfigMap([
            ("strings", .list(strings.map { .string($0) })),
            ("keys", .map(ConfigMap(strings.filter { !$0.isEmpty }.map { (key: $0, value: ConfigValue.int(1)) }))),
            ("numbers", .list([.int(-3), .float(0.5), .float(1e-8), .float(40000), .float(-.infinity), .bool(false), .null])),
            ("nested", .list([.list([.int(1), .int(2)]), .map(ConfigMap()), .list([]),
                              .map(ConfigMap([("a", .list([.map(ConfigMap([("b", .string("c"))]))]))]))])),
            ("empty", .map(ConfigMap())),
        ]))
        let text = value.yaml
        XCTAssertEqual(try ConfigValue.parse(yaml: text, source: "t"), value, text)
        XCTAssertTrue(text.contains("\n- [1, 2]\n") || text.contains("\n  - [1, 2]\n"), text)
        XCTAssertTrue(text.contains("\nnumbers: [-3, 0.5, 1.0e-08, 40000.0, -.inf, false, null]\n"), text)
        XCTAssertTrue(text.hasSuffix("empty: {}\n"), text)
    }
}
