from tests.demo_fixture import demo, demo_process, demo_thread  # noqa: F401
