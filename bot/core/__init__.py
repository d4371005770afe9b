"""The core: one door for every request, the jobs it becomes, and the work they do."""
