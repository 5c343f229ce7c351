defmodule BdMix.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    Supervisor.start_link([BdMix.Counter], strategy: :one_for_one, name: BdMix.Supervisor)
  end
end
