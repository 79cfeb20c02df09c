terraform {
  # check blocks (the "zip missing" warning in checks.tf) arrived in Terraform 1.5.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.32.0 added both `logging_config` on aws_lambda_function (JSON logs, log
      # levels) and the `python3.12` runtime value (the default runtime here); 5.31
      # rejects both. python3.13/python3.14 need a provider that knows those values.
      # Below 7: the module is planned against 5.x and 6.x (the pipeline's own root
      # pins 6.x); a next major release may remove what it uses.
      version = ">= 5.32, < 7"
    }
  }
}
