// The Data module; its files arrive with their issues.
