// The PEFT module; its files arrive with their issues.
