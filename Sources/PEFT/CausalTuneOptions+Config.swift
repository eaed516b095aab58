import Config

extension CausalTuneOptions {
    /// The layer's options from the run configuration's `model.peft` section (reference §Configuration),
    /// validated (a bad value throws a `CausalTuneError` naming its `model.peft` key).
    public init(_ peft: ExperimentConfig.PEFTOptions) throws {
        // The configuration and the layer spell every choice the same way (reference §Causal-Tune layer, §Configuration).
        guard let method = PEFTMethod(rawValue: peft.method.rawValue),
              let transform = TransformKind(rawValue: peft.transform.rawValue),
              let mode = FilterMode(rawValue: peft.filter.mode.rawValue),
              let shape = FilterShape(rawValue: peft.filter.shape.rawValue) else {
            preconditionFailure("model.peft choices and the PEFT enums differ")
        }
        self.init(method: method, tokens: peft.tokens, loraRank: peft.loraRank, scaleInit: Float(peft.scaleInit),
                  transform: transform, discardNoncausal: peft.discardNoncausal,
                  filter: FrequencyFilter(mode: mode, shape: shape, low: peft.filter.low, high: peft.filter.high))
        try validate()
    }
}
