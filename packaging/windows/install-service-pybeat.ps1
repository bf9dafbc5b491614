<#
.SYNOPSIS
  Installs pybeat as the Windows service "pybeat" (as Packetbeat's install-service-packetbeat.ps1).

.DESCRIPTION
  Run it from the unzipped folder (for example C:\Program Files\pybeat) in an elevated PowerShell:

    PowerShell.exe -ExecutionPolicy UnRestricted -File .\install-service-pybeat.ps1

  It checks that Npcap is installed, creates .\venv with CPython 3.11, 3.12 or 3.13 (the py
  launcher's, or -Python C:\path\to\python.exe), installs pybeat and its dependencies from
  .\wheels without the network, copies pybeat.yml to %ProgramData%\pybeat unless one is there
  already (so an upgrade keeps the site's config), lets only SYSTEM and Administrators read
  %ProgramData%\pybeat, and registers the service (automatic delayed start, restart on
  failure, LocalSystem). A pybeat service that exists already is stopped and replaced.
#>
[CmdletBinding()]
param(
  [string]$Python = ""
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$workdir = Split-Path -Parent $MyInvocation.MyCommand.Path
$dataRoot = Join-Path $env:ProgramData "pybeat"
$venv = Join-Path $workdir "venv"

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  Write-Host -ForegroundColor Red "Run this script in an elevated PowerShell (Run as administrator)."
  exit 1
}

# Npcap provides the capture driver and wpcap.dll, where pybeat looks for it (as Packetbeat does).
$wpcap = Join-Path $env:SystemRoot "System32\Npcap\wpcap.dll"
if (-not (Test-Path $wpcap)) {
  Write-Host -ForegroundColor Red "Npcap is not installed ($wpcap is missing): pybeat captures through it."
  Write-Host "Install Npcap from https://npcap.com (leave 'Restrict Npcap driver's access to Administrators only'"
  Write-Host "as you like: the service runs as LocalSystem), then run this script again."
  exit 1
}

# A CPython the wheelhouse has wheels for.
if (-not $Python) {
  $launcher = Get-Command py.exe -ErrorAction SilentlyContinue
  if ($launcher) {
    # A missing version makes py.exe write to stderr, which "Stop" would turn into an error.
    $ErrorActionPreference = "Continue"
    foreach ($version in "3.11", "3.12", "3.13") {
      $found = & $launcher.Source "-$version" -c "import sys; print(sys.executable)" 2>$null
      if ($LASTEXITCODE -eq 0 -and $found) { $Python = "$found".Trim(); break }
    }
    $ErrorActionPreference = "Stop"
  }
}
if (-not $Python -or -not (Test-Path $Python)) {
  Write-Host -ForegroundColor Red "No CPython 3.11, 3.12 or 3.13 found: install one for all users from python.org,"
  Write-Host "or pass its path: .\install-service-pybeat.ps1 -Python 'C:\Program Files\Python311\python.exe'"
  exit 1
}
& $Python -c "import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)"
if ($LASTEXITCODE -ne 0) { Write-Host -ForegroundColor Red "$Python is not CPython 3.11-3.13."; exit 1 }

# Replace an existing service (the venv it runs from is rebuilt below).
if (Get-Service pybeat -ErrorAction SilentlyContinue) {
  Stop-Service pybeat
  (Get-Service pybeat).WaitForStatus('Stopped')
  Start-Sleep -Seconds 1
  sc.exe delete pybeat | Out-Null
}
if (Test-Path $venv) { Remove-Item -Recurse -Force $venv }

Write-Host "Installing pybeat into $venv with $Python"
& $Python -m venv $venv
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
& "$venv\Scripts\python.exe" -m pip install --quiet --no-index --find-links (Join-Path $workdir "wheels") pybeat
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

# Config, data and logs: %ProgramData%\pybeat; the site's pybeat.yml is never overwritten.
New-Item -ItemType Directory -Force -Path $dataRoot, (Join-Path $dataRoot "data"), (Join-Path $dataRoot "logs") | Out-Null
$config = Join-Path $dataRoot "pybeat.yml"
if (-not (Test-Path $config)) { Copy-Item (Join-Path $workdir "pybeat.yml") $config }
# Only SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544): the config may hold credentials.
icacls.exe $dataRoot /inheritance:r /grant:r "*S-1-5-18:(OI)(CI)F" "*S-1-5-32-544:(OI)(CI)F" | Out-Null

& "$venv\Scripts\pybeat.exe" service install --path.home $workdir
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
& "$venv\Scripts\pybeat.exe" test config -c $config --path.home $workdir --path.config $dataRoot
Write-Host "Installed. Edit $config if needed, then: Start-Service pybeat"
