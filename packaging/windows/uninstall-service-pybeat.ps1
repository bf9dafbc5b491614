<#
.SYNOPSIS
  Removes the Windows service "pybeat" (as Packetbeat's uninstall-service-packetbeat.ps1).

.DESCRIPTION
  Stops and deletes the service. The program folder and %ProgramData%\pybeat (config, data,
  logs) stay; delete them by hand to remove everything.
#>
$ErrorActionPreference = "Stop"
if (Get-Service pybeat -ErrorAction SilentlyContinue) {
  Stop-Service pybeat
  (Get-Service pybeat).WaitForStatus('Stopped')
  Start-Sleep -Seconds 1
  sc.exe delete pybeat | Out-Null
  Write-Host "Removed the pybeat service."
} else {
  Write-Host "There is no pybeat service."
}
