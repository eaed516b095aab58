import Core
import Layers
import Numerics
import PEFT
import XCTest

/// `PEFTRegistry`: which adapter each `model.peft.method` builds, and the protocol's defaults.
final class PEFTRegistryTests: XCTestCase {
    private func make(_ options: CausalTuneOptions, seed: UInt64 = 7) throws -> (any PEFTAdapter)? {
        try PEFTRegistry.make(options: options, layers: 3, channels: 8, patchSize: 14, seed: seed)
    }

    func testEveryMethodBuildsItsAdapter() throws {
        for method in PEFTMethod.allCases {
            let options = method == .rein ? CausalTuneOptions.rein(tokens: 5) : CausalTuneOptions(method: method, tokens: 5)
            let adapter = try make(options)
            switch method {
            case .none:
                XCTAssertNil(adapter)
            case .causalTune, .rein:
                let a = try XCTUnwrap(adapter as? CausalTuneAdapter, "\(method)")
                XCTAssertEqual(a.options, options)
                XCTAssertEqual(a.transformKind, method == .rein ? .identity : .dct)
                XCTAssertEqual(a.filter.mode, method == .rein ? .none : .bandpass)
                // The token → query link is the layer's own tokens [L, m, C].
                let link = try XCTUnwrap(a.tokenLink)
                XCTAssertTrue(link === a)
                let shape = link.linkTokenShape
                XCTAssertEqual([shape.layers, shape.tokens, shape.channels], [3, 5, 8])
            }
        }
    }

    /// The registry's adapter is the one the layer's initialiser makes from the same seed:
    /// same parameter names, shapes and values (with low-rank tokens too).
    func testRegistryAdapterEqualsTheDirectlyBuiltLayer() throws {
        for options in [CausalTuneOptions(tokens: 4), CausalTuneOptions(tokens: 4, loraRank: 2), .rein(tokens: 4)] {
            let built = try XCTUnwrap(try make(options, seed: 42))
            let direct = try CausalTuneAdapter(options: options, layers: 3, channels: 8, patchSize: 14, seed: 42)
            XCTAssertEqual(built.trainableParameters.map(\.name), direct.trainableParameters.map(\.name))
            for (b, d) in zip(built.trainableParameters, direct.trainableParameters) {
                XCTAssertEqual(b.parameter.value.shape, d.parameter.value.shape, b.name)
                XCTAssertEqual(b.parameter.value.array, d.parameter.value.array, b.name)
                XCTAssertNotNil(b.parameter.grad, b.name)
            }
        }
    }

    func testBadOptionsAreErrorsNamingTheKey() {
        XCTAssertThrowsError(try make(CausalTuneOptions(tokens: 0))) { e in
            XCTAssertTrue((e as? CausalTuneError)?.message.contains("model.peft.tokens") ?? false, "\(e)")
        }
        // Checked for `none` too: a config is wrong whichever method it picks.
        XCTAssertNoThrow(try make(CausalTuneOptions(method: .none, tokens: 0)))
    }

    /// Through the protocol: loading parameters by name, and the plain copy's errors.
    func testLoadParametersThroughTheProtocol() throws {
        let source = try XCTUnwrap(try make(CausalTuneOptions(tokens: 4), seed: 1))
        let target = try XCTUnwrap(try make(CausalTuneOptions(tokens: 4), seed: 2))
        let values = Dictionary(uniqueKeysWithValues: source.trainableParameters.map { ($0.name, $0.parameter.value) })
        try target.loadParameters(from: "memory") { values[$0] }
        XCTAssertEqual(target.trainableParameters.map(\.parameter.value.array), source.trainableParameters.map(\.parameter.value.array))
        XCTAssertThrowsError(try target.loadParameters(from: "memory") { $0 == "peft/scale" ? nil : values[$0] }) { e in
            XCTAssertEqual((e as? CausalTuneError)?.message, "memory: missing parameter peft/scale [1]")
        }
    }

    /// A method without tokens needs no token-link code: the default `tokenLink` is nil.
    func testTokenLinkDefaultsToNilWithoutTokens() {
        XCTAssertNil(IdentityAdapter().tokenLink)
    }
}

/// The smallest conformer: identity on the tokens, nothing trainable.
private final class IdentityAdapter: PEFTAdapter {
    var sharesOneCache = false
    var trainableParameters: [NamedParameter] { [] }
    func loadParameters(from source: String, _ lookup: (String) throws -> Tensor?) throws {
        try copyTrainableParameters(from: source, lookup)
    }
    func forward(layer: Int, input: Tensor, output: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) {
        output.copy(from: input)
    }
    func backward(layer: Int, dOutput: Tensor, dInput: Tensor, prefixTokens: Int, grid: (h: Int, w: Int)) {
        Kernels.axpy(1, dOutput, dInput)
    }
}
