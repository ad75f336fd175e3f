"""Actions of a decision task: the pure actions.json spec and hook-action rule (`spec`), and
triggering one through the index, actions.json and the Hooks service (`triggering`)."""
