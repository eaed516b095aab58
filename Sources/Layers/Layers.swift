// The Layers module; its files arrive with their issues.
