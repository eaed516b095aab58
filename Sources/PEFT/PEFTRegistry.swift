import Core

/// Which type builds a `model.peft.method`: one line per method (`none` builds nothing).
public enum PEFTRegistry {
    /// `options` is the whole `model.peft` section; the rest is the backbone's shape
    /// (`layers` blocks of width `channels`, patch size for the initialisation ranges) and the
    /// seed of the trainable initialisation.
    public typealias Builder = @Sendable (_ options: CausalTuneOptions, _ layers: Int, _ channels: Int, _ patchSize: Int,
                                          _ seed: UInt64) throws -> any PEFTAdapter

    /// Rein is the Causal-Tune layer with the identity transform and no filter
    /// (`CausalTuneOptions.effectiveTransform`), so both are one type.
    static let builders: [PEFTMethod: Builder] = [
        .causalTune: makeCausalTune,
        .rein: makeCausalTune,
    ]

    @Sendable static func makeCausalTune(_ options: CausalTuneOptions, _ layers: Int, _ channels: Int, _ patchSize: Int,
                                         _ seed: UInt64) throws -> any PEFTAdapter {
        try CausalTuneAdapter(options: options, layers: layers, channels: channels, patchSize: patchSize, seed: seed)
    }

    /// The adapter for `options.method` after checking the options, or nil for `none`.
    public static func make(options: CausalTuneOptions, layers: Int, channels: Int, patchSize: Int,
                            seed: UInt64) throws -> (any PEFTAdapter)? {
        try options.validate()
        if options.method == .none { return nil }
        guard let build = builders[options.method] else {
            throw CausalTuneError("model.peft.method: no adapter type is registered for \(options.method.rawValue)")
        }
        return try build(options, layers, channels, patchSize, seed)
    }
}
