"""The engine: schedules units, runs them through an executor, classifies and retries failures.

Import from the modules: `engine.WorkflowEngine`, `parallel.ParallelExecutionManager`,
`recovery.ErrorRecovery`, `local_executor.LocalExecutor`, `fake_executor.FakeExecutor`.
"""
