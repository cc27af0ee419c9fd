// `import VestnikKit` is all an app needs: the wire types (VestnikAPI) and the domain model
// (VestnikModel, re-exported by VestnikAPI) come with it.
@_exported import VestnikAPI
