import Config
import Foundation
import PEFT
import XCTest

/// `model.peft` (reference §Configuration) → `CausalTuneOptions`: the section resolved
/// against the layer's own schema, decoded and validated, as the experiment config does.
final class CausalTuneConfigTests: XCTestCase {
    private func options(_ peft: String) throws -> CausalTuneOptions {
        let section = try ConfigValue.parse(yaml: peft, source: "test")
        let o = try ConfigDecoder.decode(CausalTuneOptions.self, section: section, schema: CausalTuneOptions.schema,
                                         path: "model.peft", origin: "test")
        try o.validate()
        return o
    }

    func testDefaultsAreThePapersConfiguration() throws {
        let o = try options("{}")
        XCTAssertEqual(o, CausalTuneOptions())
        XCTAssertEqual(o.method, .causalTune)
        XCTAssertEqual(o.tokens, 100)
        XCTAssertNil(o.loraRank)
        XCTAssertEqual(o.scaleInit, 1e-3)
        XCTAssertEqual(o.transform, .dct)
        XCTAssertFalse(o.discardNoncausal)
        XCTAssertEqual(o.filter, FrequencyFilter(mode: .bandpass, shape: .gaussian, low: 0.2, high: 0.7))
    }

    func testEveryVariantKeyMaps() throws {
        let o = try options("{method: causal_tune, tokens: 20, lora_rank: 8, scale_init: 0.01, transform: haar, discard_noncausal: true, filter: {mode: highcut, shape: ideal, low: 0.3, high: 0.8}}")
        XCTAssertEqual(o, CausalTuneOptions(tokens: 20, loraRank: 8, scaleInit: 0.01, transform: .haar, discardNoncausal: true,
                                            filter: FrequencyFilter(mode: .highcut, shape: .ideal, low: 0.3, high: 0.8)))
        let rein = try options("{method: rein}")
        XCTAssertEqual(rein.effectiveTransform, .identity)
        XCTAssertEqual(rein.effectiveFilter.mode, .none)
        XCTAssertEqual(try options("{method: none}").method, .none)
    }

    func testInconsistentValuesAreOneErrorNamingTheKey() throws {
        XCTAssertThrowsError(try options("{transform: identity}")) { e in
            XCTAssertTrue("\(e)".contains("model.peft.filter.mode"), "\(e)")
        }
    }
}
