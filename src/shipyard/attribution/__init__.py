"""Attribution engines: who explains which model, and how exactly.

These sit below the registry (which computes a version's global importance when it is
registered); `shipyard.explanations` on the capability floor puts them behind `LoadedModel.score`.
"""
