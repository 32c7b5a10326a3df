"""Projects: a team's folder of workflows, tools and triggers, its members and their roles, and the one module
that decides who may do what (`projects.permissions`)."""
