defmodule RelTest do
  use Application

  # See http://elixir-lang.org/docs/stable/elixir/Application.html
  # for more information on OTP Applications
  def start(_type, _args) do
    import Supervisor.Spec, warn: false

    port = listen_port()
    {:ok, socket} = :gen_tcp.listen(port, [:binary, active: false, reuseaddr: true])

    # Define workers and child supervisors to be supervised
    children = [
      # Starts a worker by calling: RelTest.Worker.start_link(arg1, arg2, arg3)
      # worker(RelTest.Worker, [arg1, arg2, arg3]),
      worker(Task, [fn -> TestListener.start(socket) end])
    ]

    # See http://elixir-lang.org/docs/stable/elixir/Supervisor.html
    # for other strategies and supported options
    opts = [strategy: :one_for_one, name: RelTest.Supervisor]
    Supervisor.start_link(children, opts)
  end

  # beamdeck: the forum read `Application.get_env(:APP_NAME, :listen_port, 9000)`.
  # Test and demo nodes run side by side, so the port comes from the OS
  # environment; without REL_TEST_PORT the app env decides, else any free port.
  defp listen_port do
    case System.get_env("REL_TEST_PORT") do
      nil -> Application.get_env(:rel_test, :listen_port, 0)
      port -> String.to_integer(port)
    end
  end
end
