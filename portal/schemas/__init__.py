"""What the portal's JSON API answers, in one place: output types separate from the store's rows and
the domain types (only what a tenant's user may see). One module per router: ``fleet``, ``audit``."""
