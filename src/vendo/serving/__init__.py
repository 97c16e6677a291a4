"""``vendo serve-model``'s engine: one model, in memory, no database.

:class:`~vendo.serving.engine.ModelEngine` starts the model's runner children
(:mod:`vendo.scheduler.process`, the platform's driver) and one
:class:`~vendo.serving.service.PredictionService` per kind of work, which runs
predictions on them: input validation and downloads (:mod:`~vendo.serving.inputs`),
runner events handled in order and the end they decide (:mod:`vendo.scheduler.events`,
shared with the platform), Cog's prediction object (:mod:`~vendo.serving.records`),
output files (:mod:`~vendo.serving.outputs`), SSE streams (:mod:`~vendo.serving.stream`)
and webhooks. ``vendo.api.cog`` holds only its HTTP routes.

Import from the submodules; this file stays empty so importing the package is free.
"""

__all__: list[str] = []
