"""The one data-protection concept: decides who may do what to which patient data."""
